import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/**
 * Where `npm run build` leaves the workflow code bundled (dist/workflow-bundle.js, beside dist/workflows). A worker
 * run from the build loads it instead of bundling at start: no webpack in the worker's memory, and it starts in
 * about a second. From the TypeScript sources there is none, and the worker bundles src/workflows as before.
 */
export function prebuiltWorkflowBundle(): string | undefined {
  const file = path.resolve(__dirname, '../workflow-bundle.js');
  return existsSync(file) ? file : undefined;
}

/** Bundles the compiled workflows (dist/workflows) into dist/workflow-bundle.js; `npm run build` runs it. */
async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  const file = path.resolve(__dirname, '../workflow-bundle.js');
  writeFileSync(file, code);
  process.stdout.write(`workflow bundle: ${path.relative(process.cwd(), file)} (${Math.round(code.length / 1024)} KiB)\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bundling the workflows failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
