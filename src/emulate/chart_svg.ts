/**
 * A chart spec (charts.ts) to SVG text, in Node: vega-lite compiles the spec to a vega spec, and a
 * headless vega View (renderer 'none', no canvas, no DOM) renders its scenegraph to SVG. No
 * browser, no native addon: vega measures text by estimate when no canvas package is installed.
 *
 * The SVG goes inline into an HTML page, where the parser puts <svg> in the SVG namespace by
 * itself, so the root's xmlns declarations (namespace names that look like http URLs but are
 * never fetched) are dropped: the page then holds no http(s) string at all.
 */
import { parse, View } from 'vega';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/** The SVG of one vega-lite spec (its data inline). Rejects when vega-lite or vega refuse the spec. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg.replace(/^<svg([^>]*)>/, (_, attrs: string) => `<svg${attrs.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '')}>`);
  } finally {
    view.finalize();
  }
}
