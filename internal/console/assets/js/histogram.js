// The picture of a search: matches over time as bars stacked by type.
// Click a bar (or pick one with the arrow keys and press Enter) to narrow
// the time range to it.
import { h, svg, clear, fmtNumber, fmtLocal, fmtUTC, announce } from './dom.js';

const TYPES = ['info', 'warn', 'error'];
const HEIGHT = 100;

export class Histogram {
  constructor({ onNarrow }) {
    this.onNarrow = onNarrow;
    this.data = null;
    this.focus = -1;
    this.chart = h('div.hist-chart', {
      tabindex: '0', role: 'group', 'aria-roledescription': 'histogram',
      'aria-label': 'Matching events over time. Left and right arrows pick a bar; Enter narrows the time range to it.',
    });
    this.readout = h('p.hist-readout', { 'aria-live': 'polite' });
    this.axis = h('div.hist-axis', { 'aria-hidden': 'true' });
    this.legend = h('ul.hist-legend');
    this.el = h('section.histogram', { 'aria-labelledby': 'hist-title' },
      h('div.hist-head', h('h2#hist-title.section-title', 'Events over time'), this.legend),
      this.chart, this.axis, this.readout);
    this.chart.addEventListener('keydown', (ev) => this.key(ev));
  }

  loading() {
    this.el.classList.add('is-loading');
    this.el.setAttribute('aria-busy', 'true');
  }

  error(text) {
    this.el.classList.remove('is-loading');
    this.el.removeAttribute('aria-busy');
    clear(this.chart).append(h('p.hist-empty', text));
    clear(this.axis);
    clear(this.legend);
    this.readout.textContent = '';
  }

  render(data) {
    this.data = data;
    this.focus = -1;
    this.el.classList.remove('is-loading');
    this.el.removeAttribute('aria-busy');
    clear(this.chart);
    clear(this.axis);
    clear(this.legend);
    this.readout.textContent = '';
    const n = data.buckets.length;
    const sums = { info: 0, warn: 0, error: 0 };
    let peak = 0;
    for (const b of data.buckets) {
      for (const t of TYPES) sums[t] += b[t];
      peak = Math.max(peak, b.info + b.warn + b.error);
    }
    for (const t of TYPES) {
      this.legend.append(h('li', h('span.swatch', { class: `swatch t-${t}`, 'aria-hidden': 'true' }), `${t} ${fmtNumber(sums[t])}`));
    }
    if (!n) return;
    const width = n * 10;
    const root = svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, preserveAspectRatio: 'none', class: 'hist-svg', 'aria-hidden': 'true', focusable: 'false' });
    // Faint grid at the half and the top.
    root.append(svg('line', { x1: 0, x2: width, y1: HEIGHT / 2, y2: HEIGHT / 2, class: 'grid' }));
    data.buckets.forEach((b, i) => {
      const total = b.info + b.warn + b.error;
      const g = svg('g', { class: 'bar', 'data-index': i });
      // A full-height hit area makes small bars easy to click.
      g.append(svg('rect', { x: i * 10, y: 0, width: 10, height: HEIGHT, class: 'hit' }));
      let y = HEIGHT;
      for (const t of TYPES) {
        if (!b[t] || !peak) continue;
        const hgt = Math.max(1, (b[t] / peak) * (HEIGHT - 4));
        y -= hgt;
        g.append(svg('rect', { x: i * 10 + 1, y, width: 8, height: hgt, class: `seg t-${t}` }));
      }
      g.append(svg('title', {}, `${this.label(b)}: ${fmtNumber(total)} (info ${b.info}, warn ${b.warn}, error ${b.error})`));
      g.addEventListener('click', () => this.narrow(i));
      root.append(g);
    });
    this.svg = root;
    this.chart.append(root);
    if (peak) this.chart.append(h('span.hist-peak', { 'aria-hidden': 'true' }, fmtNumber(peak)));
    // Axis: first, middle and last bar starts.
    for (const i of [0, Math.floor(n / 2), n - 1]) {
      this.axis.append(h('span', this.short(data.buckets[i].start)));
    }
  }

  label(b) {
    const end = b.start + this.data.bucketMs - 1;
    return `${fmtLocal(b.start)} – ${fmtLocal(end)}`;
  }

  short(ms) {
    const d = new Date(ms);
    const opts = this.data.bucketMs >= 86_400_000
      ? { month: 'short', day: 'numeric' }
      : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
    return new Intl.DateTimeFormat(undefined, opts).format(d);
  }

  key(ev) {
    if (!this.data || !this.data.buckets.length) return;
    const n = this.data.buckets.length;
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft' || ev.key === 'Home' || ev.key === 'End') {
      ev.preventDefault();
      if (ev.key === 'Home') this.focus = 0;
      else if (ev.key === 'End') this.focus = n - 1;
      else this.focus = Math.min(n - 1, Math.max(0, this.focus + (ev.key === 'ArrowRight' ? 1 : -1)));
      this.svg.querySelectorAll('.bar.is-focus').forEach((g) => g.classList.remove('is-focus'));
      this.svg.querySelector(`.bar[data-index="${this.focus}"]`)?.classList.add('is-focus');
      const b = this.data.buckets[this.focus];
      this.readout.textContent = `${this.label(b)}: ${fmtNumber(b.info + b.warn + b.error)} events — info ${b.info}, warn ${b.warn}, error ${b.error}. Enter narrows to it.`;
    } else if (ev.key === 'Enter' && this.focus >= 0) {
      ev.preventDefault();
      this.narrow(this.focus);
    }
  }

  narrow(i) {
    const b = this.data.buckets[i];
    const from = Math.max(b.start, this.data.from);
    const to = Math.min(b.start + this.data.bucketMs - 1, this.data.to);
    announce(`Time range narrowed to ${fmtUTC(from)} – ${fmtUTC(to)}`);
    this.onNarrow(from, to);
  }
}
