// `prepack` of each package (npm pack, npm publish): copies LICENSE and the docs its README reaches, link by link,
// from the repository's docs/ into the package (git-ignored there), so that every link in the published Markdown
// names a file that ships. A link that leaves docs/ stops the pack, naming the file and the link.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const pkg = process.cwd();
const root = path.resolve(pkg, '../..');
const docs = path.join(root, 'docs');
rmSync(path.join(pkg, 'docs'), { recursive: true, force: true });
copyFileSync(path.join(root, 'LICENSE'), path.join(pkg, 'LICENSE'));

const links = (file) =>
  [...readFileSync(file, 'utf8').matchAll(/\]\(([^)\s#]+)(?:#[^)]*)?\)/g)]
    .map((m) => m[1])
    .filter((href) => !/^[a-z]+:/i.test(href));

const queue = links(path.join(pkg, 'README.md')).map((href) => ({
  from: path.join(pkg, 'README.md'),
  to: path.join(docs, path.relative('docs', href)),
}));
const seen = new Set();
const broken = [];
while (queue.length > 0) {
  const { from, to } = queue.shift();
  if (seen.has(to)) continue;
  seen.add(to);
  if (!to.startsWith(docs + path.sep) || !existsSync(to)) {
    broken.push(`${path.relative(root, from)} links to ${path.relative(root, to)}, which is not in docs/`);
    continue;
  }
  const target = path.join(pkg, 'docs', path.relative(docs, to));
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(to, target);
  if (to.endsWith('.md'))
    for (const href of links(to)) queue.push({ from: to, to: path.resolve(path.dirname(to), href) });
}
if (broken.length > 0) {
  process.stderr.write(`pack-docs: links that would not resolve in the package:\n  ${broken.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write(`pack-docs: ${seen.size} docs and LICENSE copied into ${path.relative(root, pkg)}\n`);
