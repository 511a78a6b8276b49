// A Plinth server in its own process, for the durability test (kill -9): prints its URL.
//   node dist/test/helpers/serve_child.js <registry.db>
import { createServer } from "../../src/serve/index.js";

const server = await createServer({ registry: process.argv[2] });
const url = await server.listen({ port: 0 });
process.stdout.write(`${url}\n`);
