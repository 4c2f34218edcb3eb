// A list input: values shown as removable chips, typed into a text field
// with suggestions (a <datalist>). Enter or a comma adds the typed value;
// Backspace in the empty field removes the last chip.
import { h, clear } from './dom.js';

let seq = 0;

export class ChipInput {
  constructor({ label, name, placeholder = '', suggestions = [], hint = '' }) {
    const id = `chip-${name}-${++seq}`;
    this.name = name;
    this.label = label;
    this.values = [];
    this.onchange = null;
    this.list = h('datalist', { id: `${id}-list` });
    this.input = h('input.chip-field', {
      id, name, type: 'text', autocomplete: 'off', spellcheck: 'false',
      list: `${id}-list`, placeholder, 'aria-describedby': `${id}-hint`,
    });
    this.chips = h('ul.chips', { 'aria-label': `${label}: chosen values` });
    this.el = h('div.field.chip-input', { dataset: { filter: name } },
      h('label', { for: id }, label),
      h('div.chip-box', this.chips, this.input),
      h('span.sr-only', { id: `${id}-hint` }, hint || 'Type a value and press Enter or comma to add it; Backspace removes the last.'),
      this.list);
    this.setSuggestions(suggestions);
    this.input.addEventListener('keydown', (ev) => {
      if ((ev.key === 'Enter' || ev.key === ',') && this.input.value.trim()) {
        ev.preventDefault();
        this.commit();
      } else if (ev.key === 'Backspace' && !this.input.value && this.values.length) {
        this.remove(this.values[this.values.length - 1]);
      }
    });
    // Picking a suggestion fills the field whole: take it at once.
    this.input.addEventListener('input', (ev) => {
      if (ev.inputType === 'insertReplacementText' || ev.inputType === undefined) {
        if ([...this.list.options].some((o) => o.value === this.input.value)) this.commit();
      }
    });
    this.input.addEventListener('blur', () => this.commit());
  }

  /** Adds whatever is typed (comma-separated) as chips. */
  commit() {
    const typed = this.input.value.split(',').map((s) => s.trim()).filter(Boolean);
    this.input.value = '';
    if (!typed.length) return;
    this.set([...this.values, ...typed]);
    this.changed();
  }

  set(values) {
    this.values = [...new Set(values)];
    clear(this.chips);
    for (const v of this.values) {
      this.chips.append(h('li.chip', h('span', v),
        h('button', { type: 'button', 'aria-label': `Remove ${this.label} ${v}`, title: 'Remove', onclick: () => { this.remove(v); this.input.focus(); } }, '×')));
    }
  }

  remove(v) {
    this.set(this.values.filter((x) => x !== v));
    this.changed();
  }

  changed() { if (this.onchange) this.onchange(this.values); }

  setSuggestions(values) {
    clear(this.list);
    for (const v of values) this.list.append(h('option', { value: v }));
  }
}
