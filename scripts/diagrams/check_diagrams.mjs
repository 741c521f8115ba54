// Validates every ```mermaid block of the Markdown files named on the command line with
// Mermaid's own parser (mermaid.parse under jsdom), then checks what the parser lets through
// but a renderer would draw wrong or not at all:
//   - C4 diagrams: every Rel names defined elements or boundaries, and every UpdateRelStyle
//     names an existing Rel;
//   - sequence diagrams that declare their participants: no message names an undeclared one
//     (Mermaid would silently add a participant for a typo);
//   - flowcharts whose nodes have shapes: every node has one (a typo in an edge creates a
//     bare node);
//   - class diagrams: every class in a relation is declared.
// Run by scripts/check_diagrams.sh, which installs the pinned packages and sets
// DIAGRAM_TOOLS to the directory holding their node_modules.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const tools = process.env.DIAGRAM_TOOLS;
if (!tools) {
  console.error('check_diagrams: DIAGRAM_TOOLS is not set (run scripts/check_diagrams.sh)');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(tools), 'package.json'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);

const { JSDOM } = await load('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await load('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
const version = require('mermaid/package.json').version;
const jsdomVersion = require('jsdom/package.json').version;

/** The ```mermaid blocks of `file`: their text and the line of their opening fence. */
function blocks(file) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const found = [];
  let open = null;
  lines.forEach((line, i) => {
    if (open === null && /^\s*```mermaid\s*$/.test(line)) {
      open = { line: i + 1, body: [] };
    } else if (open !== null && /^\s*```\s*$/.test(line)) {
      found.push({ line: open.line, text: open.body.join('\n') });
      open = null;
    } else if (open !== null) {
      open.body.push(line);
    }
  });
  if (open !== null) found.push({ line: open.line, text: null });
  return found;
}

/** Problems the parser does not report, by diagram type. */
function semantic(type, db, text) {
  const problems = [];
  if (type === 'c4') {
    const known = new Set([
      ...db.getC4ShapeArray().map((s) => s.alias),
      ...db.getBoundaries().map((b) => b.alias),
    ]);
    const rels = db.getRels();
    for (const rel of rels) {
      for (const end of [rel.from, rel.to]) {
        if (!known.has(end)) problems.push(`Rel(${rel.from}, ${rel.to}): '${end}' is no element or boundary`);
      }
    }
    const pairs = new Set(rels.map((r) => `${r.from}\u0000${r.to}`));
    for (const m of text.matchAll(/UpdateRelStyle\(\s*([^,\s]+)\s*,\s*([^,\s)]+)/g)) {
      if (!pairs.has(`${m[1]}\u0000${m[2]}`)) problems.push(`UpdateRelStyle(${m[1]}, ${m[2]}): no such Rel`);
    }
  } else if (type === 'sequence') {
    const declared = new Set();
    for (const m of text.matchAll(/^\s*(?:create\s+)?(?:participant|actor)\s+(.+?)(?:\s+as\s+.*)?$/gm)) {
      declared.add(m[1].trim());
    }
    if (declared.size > 0) {
      for (const name of db.getActors().keys()) {
        if (!declared.has(name)) problems.push(`'${name}' is used but not declared as a participant or actor`);
      }
    }
  } else if (type === 'flowchart-v2' || type === 'flowchart') {
    const vertices = [...db.getVertices().entries()];
    const subgraphs = new Set(db.getSubGraphs().map((s) => s.id));
    const nodes = vertices.filter(([id]) => !subgraphs.has(id));
    if (nodes.some(([, v]) => v.type)) {
      for (const [id, v] of nodes) {
        if (!v.type) problems.push(`node '${id}' has no shape or label (a typo of another node's id?)`);
      }
    }
  } else if (type === 'classDiagram' || type === 'class') {
    const declared = new Set([...text.matchAll(/^\s*class\s+([A-Za-z0-9_]+)/gm)].map((m) => m[1]));
    for (const name of db.getClasses().keys()) {
      if (!declared.has(name)) problems.push(`class '${name}' is used in a relation but never declared`);
    }
  }
  return problems;
}

let passed = 0;
let failed = 0;
const files = process.argv.slice(2);
console.log(`mermaid ${version} (jsdom ${jsdomVersion}): ${files.length} Markdown files`);
for (const file of files) {
  for (const block of blocks(file)) {
    const where = `${file}:${block.line}`;
    if (block.text === null) {
      console.log(`FAIL ${where}: the mermaid block is never closed`);
      failed++;
      continue;
    }
    let problems;
    let type = '?';
    try {
      const parsed = await mermaid.parse(block.text);
      type = parsed.diagramType;
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(block.text);
      problems = semantic(type, diagram.db, block.text);
    } catch (err) {
      problems = [String(err?.message ?? err).trim()];
    }
    if (problems.length === 0) {
      console.log(`ok   ${where}: ${type}`);
      passed++;
    } else {
      console.log(`FAIL ${where}: ${type}`);
      // The parser's 'Expecting ...' lists every token; the first 200 characters say enough.
      const cut = (l) => (l.length > 200 ? `${l.slice(0, 200)}…` : l);
      for (const p of problems) console.log(p.split('\n').map((l) => `     ${cut(l)}`).join('\n'));
      failed++;
    }
  }
}
console.log(`check_diagrams: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
