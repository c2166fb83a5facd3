// `netlab graph FILE --format html`: one self-contained page (the bundle, the styles and the
// lab's data inline) that draws the model and its predicted reachability with no server.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Lab } from '../../topology/types.js';
import { labView } from './view.js';
import { predictionsOf } from './predict.js';
import { STATIC_DIR } from './serve.js';
import type { EmbeddedData } from './types.js';

/** JSON that can sit inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

export async function standaloneHtml(lab: Lab, staticDir = STATIC_DIR): Promise<string> {
  const read = (f: string) => {
    const p = path.join(staticDir, f);
    if (!fs.existsSync(p)) throw new Error(`web front end not built (${p} is missing): run npm run build`);
    return fs.readFileSync(p, 'utf8');
  };
  const html = read('index.html');
  const js = read('app.js').replace(/\/\/# sourceMappingURL=\S+\s*$/, '').replace(/<\/script/gi, '<\\/script');
  const css = read('app.css').replace(/\/\*# sourceMappingURL=\S+\s*\*\/\s*$/, '').replace(/<\/style/gi, '<\\/style');
  const data: EmbeddedData = { graph: labView(lab, null, 'offline'), predictions: await predictionsOf(lab) };
  const link = /<link rel="stylesheet" href="app\.css">/;
  const script = /<script src="app\.js"><\/script>/;
  if (!link.test(html) || !script.test(html)) throw new Error('index.html does not reference app.css and app.js as expected');
  return html
    .replace(/<title>[^<]*<\/title>/, `<title>${lab.name.replace(/[<&]/g, '')} - netlab</title>`)
    .replace(link, () => `<style>\n${css}\n</style>`)
    .replace(script, () => `<script id="netlab-data" type="application/json">${scriptJson(data)}</script>\n<script>\n${js}\n</script>`);
}
