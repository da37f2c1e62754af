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

const INLINE_MAP = /\n\/\/# sourceMappingURL=data:application\/json;charset=utf-8;base64,([A-Za-z0-9+/=]+)\s*$/;

/**
 * The bundle with its inline source map made portable: each source named relative to `dir` (where the bundle is
 * written), and without the sources' contents. Workflow stack traces still name files and lines, and the published
 * bundle carries no path of the machine that built it.
 */
export function portableBundle(code: string, dir: string): string {
  const match = INLINE_MAP.exec(code);
  if (!match) return code;
  const map = JSON.parse(Buffer.from(match[1]!, 'base64').toString('utf8')) as {
    sources: string[];
    sourcesContent?: unknown;
    sourceRoot?: string;
    file?: string;
  };
  const portable = {
    ...map,
    // webpack names ignored modules `ignored|<absolute dir>|<module>`: every part is made relative.
    sources: map.sources.map((source) =>
      source
        .split('|')
        .map((part) => (path.isAbsolute(part) ? path.relative(dir, part).split(path.sep).join('/') : part))
        .join('|'),
    ),
    sourceRoot: '',
    file: 'workflow-bundle.js',
  };
  delete portable.sourcesContent;
  return `${code.slice(0, match.index)}\n//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(JSON.stringify(portable)).toString('base64')}\n`;
}

/** Bundles the compiled workflows (dist/workflows) into dist/workflow-bundle.js; `npm run build` runs it. */
async function main(): Promise<void> {
  const file = path.resolve(__dirname, '../workflow-bundle.js');
  const { code: bundled } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  const code = portableBundle(bundled, path.dirname(file));
  writeFileSync(file, code);
  process.stdout.write(
    `workflow bundle: ${path.relative(process.cwd(), file)} (${Math.round(code.length / 1024)} KiB)\n`,
  );
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bundling the workflows failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
