// Part of `npm run release:check` (scripts/release-check.sh): checks the files `npm publish`
// would upload, unpacked from the tarball into PKG_DIR, against the file list of
// `npm publish --dry-run --json` (PUBLISH_JSON).
//
//   node scripts/release-check-files.mjs PKG_DIR PUBLISH_JSON ROOT_README
//
// Prints one `  ok   - …` / `  FAIL - …` / `  note - …` line per check; exits 1 on a FAIL.
// Parses JavaScript and declarations with the TypeScript compiler's parser (a devDependency).
import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';

const [pkgDir, publishJson, rootReadme] = process.argv.slice(2);
let failures = 0;
const ok = (what) => console.log(`  ok   - ${what}`);
const fail = (what, details = []) => {
  failures++;
  console.log(`  FAIL - ${what}`);
  for (const d of details.slice(0, 20)) console.log(`      | ${d}`);
  if (details.length > 20) console.log(`      | … and ${details.length - 20} more`);
};
const check = (good, what, details) => (good ? ok(what) : fail(what, details));
const note = (what) => console.log(`  note - ${what}`);

// ---- the file list npm publish would upload
const published = Object.values(JSON.parse(readFileSync(publishJson, 'utf8')))[0];
const files = published.files.map((f) => f.path).sort();
const fileSet = new Set(files);
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
console.log(`   ${published.id}: ${files.length} files, ${(published.size / 1024).toFixed(0)} KiB packed, ${(published.unpackedSize / 1024).toFixed(0)} KiB unpacked`);

const required = ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts'];
const absent = required.filter((f) => !fileSet.has(f));
check(absent.length === 0, `npm publish uploads ${required.join(', ')}`, absent);

const forbidden = files.filter((f) =>
  /(^|\/)(src|test|tests|__tests__|coverage|node_modules)\/|\.(spec|test|e2e-spec|faults-spec|system-spec)\.|\.tsbuildinfo$|(^|\/)\.(env|npmrc)|\.tgz$|(^|\/)tsconfig.*\.json$/.test(f),
);
check(forbidden.length === 0, 'it uploads no sources, tests, specs, build info, tsconfig, .env/.npmrc or tarballs', forbidden);
const outside = files.filter((f) => !/^(dist\/.+|package\.json|README\.md|LICENSE(\.md)?)$/.test(f));
check(outside.length === 0, 'it uploads only dist/, package.json, README.md (and a LICENSE)', outside);

if (rootReadme) {
  const same = existsSync(join(pkgDir, 'README.md')) && readFileSync(join(pkgDir, 'README.md'), 'utf8') === readFileSync(rootReadme, 'utf8');
  check(same, 'its README.md is the repository README as it is now (prepack copies it)');
}
if (!files.some((f) => /^LICEN[CS]E/i.test(f))) {
  note(`package.json says "license": ${JSON.stringify(pkg.license)}, but no LICENSE file is shipped (npm adds one from libs/telemetry/ when it is there)`);
}
for (const field of ['repository', 'homepage', 'bugs']) {
  if (pkg[field] === undefined) note(`package.json has no "${field}" (npm shows none on the package page)`);
}

// ---- package.json: what consumers and npm read
check(pkg.type === 'module', 'package.json: "type": "module" (an ES module package)');
check(typeof pkg.engines?.node === 'string' && pkg.engines.node.length > 0, `package.json: engines.node is set (${pkg.engines?.node})`);
const targets = [];
const collect = (value, where) => {
  if (typeof value === 'string') targets.push([where, value]);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) collect(v, `${where}.${k}`);
};
collect(pkg.exports, 'exports');
if (pkg.main) targets.push(['main', pkg.main]);
if (pkg.types) targets.push(['types', pkg.types]);
const badTargets = targets.filter(([, t]) => !t.startsWith('./') || !fileSet.has(normalize(t.slice(2))));
check(targets.length > 0 && badTargets.length === 0, `every exports/main/types target is a shipped file (${targets.length} targets)`, badTargets.map(([w, t]) => `${w}: ${t}`));
const dotExport = pkg.exports?.['.'];
check(dotExport && typeof dotExport === 'object' && Object.keys(dotExport)[0] === 'types', 'exports["."] lists "types" first (TypeScript takes the first condition that matches)');

// ---- every specifier in the shipped code
const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]);
const packageOf = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

function specifiers(sf) {
  const found = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ spec: node.moduleSpecifier.text, dynamic: false });
    } else if (ts.isCallExpression(node) && node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0])) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) found.push({ spec: node.arguments[0].text, dynamic: true });
      else if (ts.isIdentifier(node.expression) && node.expression.text === 'require') found.push({ spec: node.arguments[0].text, dynamic: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ spec: node.argument.literal.text, dynamic: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

// Top-level await: an `await` (or `for await`, `await using`) outside every function.
// require(esm) refuses a graph holding one (ERR_REQUIRE_ASYNC_MODULE).
function topLevelAwaits(sf) {
  const found = [];
  const isFunctionLike = (n) => ts.isFunctionLike(n) || ts.isClassStaticBlockDeclaration(n);
  const visit = (node, inFunction) => {
    const topLevel = !inFunction;
    if (topLevel) {
      const isAwait =
        ts.isAwaitExpression(node) ||
        (ts.isForOfStatement(node) && node.awaitModifier !== undefined) ||
        (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.AwaitUsing) === ts.NodeFlags.AwaitUsing);
      if (isAwait) {
        const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
        found.push(`${sf.fileName}:${line + 1}: ${node.getText(sf).split('\n')[0].slice(0, 80)}`);
      }
    }
    ts.forEachChild(node, (child) => visit(child, inFunction || isFunctionLike(node)));
  };
  visit(sf, false);
  return found;
}

const jsFiles = files.filter((f) => f.endsWith('.js'));
const dtsFiles = files.filter((f) => f.endsWith('.d.ts'));
const unresolved = [];
const undeclared = [];
const tla = [];
let relCount = 0;
const bare = new Set();
for (const file of [...jsFiles, ...dtsFiles]) {
  const text = readFileSync(join(pkgDir, file), 'utf8');
  const isDts = file.endsWith('.d.ts');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ESNext, true, isDts ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  for (const { spec } of specifiers(sf)) {
    if (spec.startsWith('.')) {
      relCount++;
      let target = normalize(join(dirname(file), spec));
      // In a declaration file, './x.js' names the types of x.js: './x.d.ts'.
      if (isDts) target = target.replace(/\.js$/, '.d.ts');
      if (!fileSet.has(target)) unresolved.push(`${file}: '${spec}' (${target} is not shipped)`);
    } else if (!isBuiltin(spec)) {
      bare.add(spec);
      if (!declared.has(packageOf(spec))) undeclared.push(`${file}: '${spec}'`);
    }
  }
  if (!isDts) tla.push(...topLevelAwaits(sf));
}
check(unresolved.length === 0, `every relative import in the ${jsFiles.length} .js and ${dtsFiles.length} .d.ts files names a shipped file (${relCount} imports)`, unresolved);
check(undeclared.length === 0, `every package they import is a node: builtin or declared in dependencies/peerDependencies (${[...bare].sort().join(', ')})`, undeclared);
check(tla.length === 0, `no top-level await in any of the ${jsFiles.length} .js files (require(esm) refuses one: ERR_REQUIRE_ASYNC_MODULE)`, tla);
const withoutTypes = jsFiles.filter((f) => !fileSet.has(f.replace(/\.js$/, '.d.ts')));
check(withoutTypes.length === 0, 'every .js file has its .d.ts', withoutTypes);

// ---- source maps: they name ../src/*.ts, which is not shipped, so each must carry its sources inline
const mapProblems = [];
let maps = 0;
for (const file of jsFiles) {
  const text = readFileSync(join(pkgDir, file), 'utf8');
  const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
  if (!url) continue;
  if (url.startsWith('data:')) continue;
  const mapFile = normalize(join(dirname(file), url));
  if (!fileSet.has(mapFile)) {
    mapProblems.push(`${file}: sourceMappingURL ${url} is not shipped`);
    continue;
  }
  maps++;
  const map = JSON.parse(readFileSync(join(pkgDir, mapFile), 'utf8'));
  const sources = map.sources ?? [];
  const contents = map.sourcesContent ?? [];
  sources.forEach((source, i) => {
    const shipped = fileSet.has(normalize(join(dirname(mapFile), map.sourceRoot ?? '', source)));
    if (!shipped && typeof contents[i] !== 'string') mapProblems.push(`${mapFile}: source ${source} is neither shipped nor inline`);
  });
}
const orphanMaps = files.filter((f) => f.endsWith('.map') && !fileSet.has(f.replace(/\.map$/, '')));
mapProblems.push(...orphanMaps.map((f) => `${f}: no file of its own`));
check(mapProblems.length === 0, `the ${maps} source maps are whole: each names a shipped map, and sources not shipped are inline (sourcesContent)`, mapProblems);

process.exitCode = failures === 0 ? 0 : 1;
