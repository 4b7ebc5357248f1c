// Rules: filled in once riskd serves RulesService.
import { h, clear } from './shared/dom.js';
export async function render(ctx) { clear(ctx.content, h('div', { class: 'empty' }, 'This riskd does not serve RulesService.')); }
