#!/usr/bin/env node
/**
 * The `plinth` command line.
 *
 *     plinth demo                       # pretrain a small GPT on Moby Dick, sample from it
 *     plinth generate --model runs/demo --prompt "Call me "
 *     plinth info                       # kernels, threads, memory
 */
import { runDemo, demoHelp } from "./demo.js";
import { runGenerate, generateHelp } from "./generate.js";
import { runInfo, infoHelp } from "./info.js";
import { launchedRank } from "../native/mpi.js";
import { runPretrain, pretrainHelp, runTokenizer, tokenizerHelp } from "./pretrain.js";
import { UsageError } from "./args.js";
import { runScale, scaleHelp } from "./scale.js";
import { embedHelp, fillMaskHelp, runEmbed, runFillMask } from "./encoders.js";
import { keysHelp, runKeys, runServe, serveHelp } from "./serve.js";
import { registryHelp, runRegistry } from "./registry.js";
import { runSearch, runZeroShotImage, searchHelp, zeroShotHelp } from "./clip.js";
import { adaptHelp, evalHelp, runAdapt, runEval } from "./adapt.js";
import { auditHelp, runAuditCommand } from "./audit.js";
import { runTask, taskHelp } from "./task.js";
import { exportHelp, importHelp, runExport, runImport } from "./export.js";

const commands: Record<string, { run: (argv: string[]) => void | Promise<void>; help: string }> = {
  demo: { run: runDemo, help: demoHelp },
  tokenizer: { run: runTokenizer, help: tokenizerHelp },
  pretrain: { run: runPretrain, help: pretrainHelp },
  scale: { run: runScale, help: scaleHelp },
  "fill-mask": { run: runFillMask, help: fillMaskHelp },
  embed: { run: runEmbed, help: embedHelp },
  "zero-shot": { run: runZeroShotImage, help: zeroShotHelp },
  search: { run: runSearch, help: searchHelp },
  generate: { run: runGenerate, help: generateHelp },
  adapt: { run: runAdapt, help: adaptHelp },
  eval: { run: runEval, help: evalHelp },
  audit: { run: runAuditCommand, help: auditHelp },
  task: { run: runTask, help: taskHelp },
  serve: { run: runServe, help: serveHelp },
  keys: { run: runKeys, help: keysHelp },
  registry: { run: runRegistry, help: registryHelp },
  export: { run: runExport, help: exportHelp },
  import: { run: runImport, help: importHelp },
  info: { run: runInfo, help: infoHelp },
};

const usage = `plinth — foundation models in TypeScript on a native compute core

Usage: plinth <command> [options]     (plinth <command> --help for details)

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.help.split("\n")[0].replace(/^plinth \S+ — /, "")}`).join("\n")}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage);
    return 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) {
    console.error(`plinth: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`plinth ${name}: ${(e as Error).message}\n\n${cmd.help}`);
      return 2;
    }
    // One rank of a data-parallel job: say which, since every rank's output is interleaved.
    const rank = launchedRank();
    console.error(`plinth ${name}${rank !== null && rank.size > 1 ? ` [rank ${rank.rank}/${rank.size}]` : ""}: ${(e as Error).message}`);
    if (process.env.PLINTH_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
