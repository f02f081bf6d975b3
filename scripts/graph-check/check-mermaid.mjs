import { JSDOM } from 'jsdom';
import fs from 'fs';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window; globalThis.document = dom.window.document;
globalThis.DOMPurify = undefined;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
let failed = 0;
for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  try { const r = await mermaid.parse(text); console.log(`${file}: ok (${r.diagramType})`); }
  catch (e) { failed++; console.log(`${file}: FAILED ${e.message}`); }
}
process.exit(failed ? 1 : 0);
