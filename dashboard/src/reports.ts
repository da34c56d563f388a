import { type AlertKind, alertKinds, api, reportQuery } from "./api.ts";
import { h, present } from "./dom.ts";
import { currentLocale, errorText, t } from "./i18n.ts";

type Report = Awaited<ReturnType<typeof api.monthlyReport>>;
type Week = Report["weekly"][number];
type Community = { id: string; name: string };

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element, as `h` makes HTML ones: attributes set as given, text never parsed. */
function s(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

// Numbers, shares, durations and dates in the reader's language.
const count = (n: number) => new Intl.NumberFormat(currentLocale()).format(n);
const percent = (p: number) =>
  new Intl.NumberFormat(currentLocale(), { style: "percent", maximumFractionDigits: 1 }).format(p / 100);
const unit = (value: number, u: "second" | "minute" | "hour") =>
  new Intl.NumberFormat(currentLocale(), {
    style: "unit",
    unit: u,
    unitDisplay: "short",
    maximumFractionDigits: 1,
  }).format(value);
/** Seconds as people say them: seconds up to two minutes, then minutes, then hours. */
const duration = (sec: number) =>
  sec < 120 ? unit(sec, "second") : sec < 7200 ? unit(sec / 60, "minute") : unit(sec / 3600, "hour");
/** Calendar days (`YYYY-MM-DD`) are dates, not instants: formatted in UTC so no zone shifts them. */
const day = (date: string) => Date.parse(`${date}T00:00:00Z`);
const monthName = (month: string) =>
  new Intl.DateTimeFormat(currentLocale(), { year: "numeric", month: "long", timeZone: "UTC" }).format(
    day(`${month}-01`),
  );
/** The days of a week that fall in the month, e.g. "11/9 – 11/15". */
function weekDays(w: Week, month: string): string {
  const first = Math.max(day(w.weekStart), day(`${month}-01`));
  const [y, m] = month.split("-").map(Number) as [number, number];
  const last = Math.min(day(w.weekStart) + 6 * 86_400_000, Date.UTC(y, m, 0));
  return new Intl.DateTimeFormat(currentLocale(), {
    month: "numeric",
    day: "numeric",
    timeZone: "UTC",
  }).formatRange(first, last);
}
/** The zone's name in the reader's language ("China Standard Time" / "中国标准时间"). */
const zoneName = (timeZone: string, at: number) =>
  new Intl.DateTimeFormat(currentLocale(), { timeZone, timeZoneName: "long" })
    .formatToParts(at)
    .find((p) => p.type === "timeZoneName")?.value ?? timeZone;

/** A big number with what it is; `value` is machine-readable, the text is for people. */
function figure(
  id: string,
  label: string,
  value: number | null,
  text: (v: number) => string,
  ...notes: Node[]
) {
  return h(
    "div",
    { class: "figure", id },
    h("span", { class: "figure-label" }, label),
    value === null
      ? h("span", { class: "figure-value" }, t("reports.none"))
      : h("data", { class: "figure-value", value }, text(value)),
    ...notes,
  );
}
const note = (text: string) => h("span", { class: "figure-note" }, text);

/** Met or missed, said in words and with an icon, not by colour alone. */
function targetNote(target: { targetPercent: number; met: boolean | null }) {
  const goal = percent(target.targetPercent);
  if (target.met === null) return h("span", { class: "target none" }, t("reports.noTarget"));
  return h(
    "span",
    { class: `target ${target.met ? "met" : "missed"}` },
    h("span", { class: "icon", "aria-hidden": "true" }, target.met ? "✔" : "✘"),
    " ",
    t(target.met ? "reports.met" : "reports.missed", { target: goal }),
  );
}

/** A `<details>` with the chart's figures as a table: the same data, for reading aloud or copying. */
function dataTable(id: string, head: string[], rows: { label: string; cells: string[] }[]) {
  return h(
    "details",
    { class: "chart-table" },
    h("summary", { class: "table-toggle" }, t("reports.table")),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id },
        h("thead", {}, h("tr", {}, ...head.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          ...rows.map((r) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, r.label),
              ...r.cells.map((c, i) => h("td", { "data-label": head[i + 1] }, c)),
            ),
          ),
        ),
      ),
    ),
  );
}

/** A round top for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
function niceCeiling(max: number): { top: number; step: number } {
  const rough = Math.max(max, 1) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
  return { top: Math.ceil(Math.max(max, 1) / step) * step, step };
}

/** Time to accept per ISO week: a median and a 90th-percentile bar side by side, value on top. */
function weeklyChart(report: Report) {
  const W = 420;
  const H = 250;
  const left = 48;
  const right = 8;
  const top = 16;
  const bottom = 52;
  const plotH = H - top - bottom;
  const values = report.weekly.flatMap((w) => [w.answerSeconds.p50 ?? 0, w.answerSeconds.p90 ?? 0]);
  const { top: max, step } = niceCeiling(Math.max(0, ...values));
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const groupW = (W - left - right) / Math.max(1, report.weekly.length);
  const barW = Math.min(28, groupW * 0.34);
  const body: SVGElement[] = [];
  for (let v = 0; v <= max; v += step) {
    body.push(
      s("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      s("text", { class: "tick", x: left - 4, y: y(v) + 4, "text-anchor": "end" }, count(v)),
    );
  }
  report.weekly.forEach((w, i) => {
    const centre = left + groupW * (i + 0.5);
    const week = t("reports.week", { n: w.isoWeek });
    body.push(
      s(
        "text",
        { class: "tick", x: centre, y: top + plotH + 16, "text-anchor": "middle" },
        t("reports.weekShort", { n: w.isoWeek }),
      ),
    );
    const bars = [
      ["p50", w.answerSeconds.p50, centre - barW - 1],
      ["p90", w.answerSeconds.p90, centre + 1],
    ] as const;
    if (bars.every(([, v]) => v === null))
      body.push(s("text", { class: "tick", x: centre, y: top + plotH - 4, "text-anchor": "middle" }, "–"));
    for (const [which, v, x] of bars) {
      if (v === null) continue;
      const label = t("reports.barTitle", {
        week,
        days: weekDays(w, report.month),
        which: t(`reports.${which}`),
        value: duration(v),
      });
      body.push(
        s(
          "rect",
          { class: `bar ${which}`, x, y: y(v), width: barW, height: Math.max(1, top + plotH - y(v)) },
          s("title", {}, label),
        ),
        s("text", { class: "value", x: x + barW / 2, y: y(v) - 3, "text-anchor": "middle" }, count(v)),
      );
    }
  });
  const chart = s(
    "svg",
    {
      class: "chart weekly",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "weekly-title weekly-desc",
    },
    s("title", { id: "weekly-title" }, t("reports.weeklyTitle")),
    s("desc", { id: "weekly-desc" }, t("reports.weeklyDesc")),
    ...body,
    s("line", { class: "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }),
    s("line", { class: "axis", x1: left, x2: left, y1: top, y2: top + plotH }),
    s(
      "text",
      {
        class: "axis-label",
        x: 0,
        y: 0,
        transform: `translate(12 ${top + plotH / 2}) rotate(-90)`,
        "text-anchor": "middle",
      },
      t("reports.axisSeconds"),
    ),
    s(
      "text",
      { class: "axis-label", x: left + (W - left - right) / 2, y: H - 8, "text-anchor": "middle" },
      t("reports.axisWeek"),
    ),
  );
  const show = (v: number | null) => (v === null ? t("reports.none") : duration(v));
  return h(
    "figure",
    { class: "chart-box", id: "report-weekly" },
    h("h3", {}, t("reports.weeklyTitle")),
    chart,
    h(
      "p",
      { class: "legend" },
      h("span", { class: "swatch p50", "aria-hidden": "true" }),
      t("reports.p50"),
      h("span", { class: "swatch p90", "aria-hidden": "true" }),
      t("reports.p90"),
    ),
    dataTable(
      "report-weekly-table",
      [t("reports.axisWeek"), t("reports.calls"), t("reports.p50"), t("reports.p90")],
      report.weekly.map((w) => ({
        label: t("reports.weekDays", {
          week: t("reports.week", { n: w.isoWeek }),
          days: weekDays(w, report.month),
        }),
        cells: [count(w.emergencies), show(w.answerSeconds.p50), show(w.answerSeconds.p90)],
      })),
    ),
  );
}

/** Alerts by kind and hour of day: a heat grid, one row per kind that occurred, the count in each cell. */
function hourChart(report: Report) {
  const kinds = alertKinds.filter((k) => report.alerts.byKind[k] > 0);
  const box = (...children: Node[]) =>
    h("figure", { class: "chart-box", id: "report-hours" }, h("h3", {}, t("reports.hourTitle")), ...children);
  if (kinds.length === 0) return box(h("p", { class: "empty" }, t("reports.noAlerts")));
  const cell = 22;
  const left = 112;
  const top = 8;
  const W = left + 24 * cell + 4;
  const H = top + kinds.length * cell + 44;
  const most = Math.max(...kinds.flatMap((k) => report.alerts.byHour[k]));
  const body: SVGElement[] = [];
  kinds.forEach((kind, row) => {
    const y = top + row * cell;
    body.push(
      s("text", { class: "tick", x: left - 6, y: y + cell / 2 + 4, "text-anchor": "end" }, t(`kind.${kind}`)),
    );
    report.alerts.byHour[kind].forEach((n, hour) => {
      const x = left + hour * cell;
      const level = n === 0 ? 0 : Math.ceil((n / most) * 4);
      body.push(
        s(
          "rect",
          {
            class: `cell level-${level}`,
            x,
            y,
            width: cell - 2,
            height: cell - 2,
            "data-kind": kind,
            "data-hour": hour,
          },
          s(
            "title",
            {},
            t("reports.cellTitle", { kind: t(`kind.${kind}`), from: hour, to: hour + 1, count: count(n) }),
          ),
        ),
      );
      if (n > 0)
        body.push(
          s(
            "text",
            {
              class: `cell-count level-${level}`,
              x: x + (cell - 2) / 2,
              y: y + cell / 2 + 3,
              "text-anchor": "middle",
            },
            count(n),
          ),
        );
    });
  });
  const base = top + kinds.length * cell;
  for (let hour = 0; hour < 24; hour += 3)
    body.push(
      s(
        "text",
        { class: "tick", x: left + hour * cell + (cell - 2) / 2, y: base + 14, "text-anchor": "middle" },
        String(hour),
      ),
    );
  const chart = s(
    "svg",
    {
      class: "chart hours",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "hours-title hours-desc",
    },
    s("title", { id: "hours-title" }, t("reports.hourTitle")),
    s("desc", { id: "hours-desc" }, t("reports.hourDesc")),
    ...body,
    s(
      "text",
      { class: "axis-label", x: left + 12 * cell, y: H - 8, "text-anchor": "middle" },
      t("reports.axisHour"),
    ),
  );
  const hours = [...Array(24).keys()].filter((hour) =>
    kinds.some((k) => (report.alerts.byHour[k][hour] ?? 0) > 0),
  );
  return box(
    h("div", { class: "chart-scroll" }, chart),
    dataTable(
      "report-hours-table",
      [t("reports.hour"), ...kinds.map((k) => t(`kind.${k}`))],
      hours.map((hour) => ({
        label: `${hour}:00–${hour + 1}:00`,
        cells: kinds.map((k) => count(report.alerts.byHour[k][hour] ?? 0)),
      })),
    ),
  );
}

function summary(report: Report) {
  const e = report.emergencies;
  const kindItem = (k: AlertKind) =>
    h(
      "li",
      { "data-kind": k },
      h("span", {}, t(`kind.${k}`)),
      h("data", { value: report.alerts.byKind[k] }, count(report.alerts.byKind[k])),
    );
  return [
    h("h3", {}, t("reports.response")),
    h(
      "div",
      { class: "figures" },
      figure(
        "figure-needing",
        t("reports.needing"),
        e.needingAPerson,
        count,
        note(t("reports.needingNote", { answered: count(e.answered), never: count(e.neverAnswered) })),
      ),
      figure(
        "figure-accept-p50",
        t("reports.acceptP50"),
        e.answerSeconds.p50,
        duration,
        note(t("reports.acceptNote")),
      ),
      figure("figure-accept-p90", t("reports.acceptP90"), e.answerSeconds.p90, duration),
      figure(
        "figure-within-60",
        t("reports.within60"),
        e.answeredWithin60sPercent,
        percent,
        targetNote(report.targets.answeredWithin60s),
      ),
      figure(
        "figure-within-180",
        t("reports.within180"),
        e.answeredWithin180sPercent,
        percent,
        targetNote(report.targets.answeredWithin180s),
      ),
      figure("figure-resolve-p50", t("reports.resolveP50"), e.resolveSeconds.p50, duration),
      figure("figure-resolve-p90", t("reports.resolveP90"), e.resolveSeconds.p90, duration),
      figure("figure-level-3", t("reports.level3"), report.escalationsReachingLevel3, count),
      figure("figure-false-alarms", t("reports.falseAlarms"), e.falseAlarms, count),
      figure(
        "figure-offline",
        t("reports.offline"),
        report.devicesOffline.hours,
        (v) => unit(v, "hour"),
        note(t("reports.offlineNote", { devices: count(report.devicesOffline.devices) })),
      ),
    ),
    h("h3", {}, t("reports.alerts")),
    h(
      "div",
      { class: "figures" },
      figure("figure-total", t("reports.total"), report.alerts.total, count),
      h("ul", { class: "by-kind", id: "report-by-kind" }, ...alertKinds.map(kindItem)),
    ),
  ];
}

/**
 * The monthly report of one community (for staff and admins): the figures as big numbers with
 * the industry's targets met or missed, two charts drawn as SVG with their tables, and the CSV.
 */
export class ReportsView {
  readonly element = h("section", { class: "reports" });
  private communities: Community[] | null = null;
  private community = "";
  /** Empty until the gateway names the month it counted (this month on the community's clock). */
  private month = "";
  private report: Report | null = null;
  private error: unknown = null;
  private loading = false;
  /** Each load's number: an answer to an older question is dropped. */
  private asked = 0;

  async show(): Promise<void> {
    this.render();
    try {
      if (!this.communities) {
        this.communities = await api.communities();
        this.community = this.communities[0]?.id ?? "";
      }
    } catch (err) {
      this.error = err;
      this.render();
      return;
    }
    await this.load();
  }

  private async load(): Promise<void> {
    const asked = ++this.asked;
    this.loading = true;
    this.render();
    try {
      const report = await api.monthlyReport(this.community, this.month || undefined);
      if (asked !== this.asked) return;
      this.report = report;
      this.month = report.month;
      this.error = null;
    } catch (err) {
      if (asked !== this.asked) return;
      this.report = null;
      this.error = err;
    }
    this.loading = false;
    this.render();
  }

  render(): void {
    // Redrawn under the reader's hands (a month picked, the language changed): focus stays put.
    const focused = this.element.contains(document.activeElement) ? document.activeElement?.id : undefined;
    const report = this.report;
    const community = h(
      "select",
      {
        id: "report-community",
        onchange: (e: Event) => {
          this.community = (e.target as HTMLSelectElement).value;
          void this.load();
        },
      },
      ...(this.communities ?? []).map((c) =>
        h("option", { value: c.id, selected: c.id === this.community }, c.name),
      ),
    );
    const month = h("input", {
      id: "report-month",
      type: "month",
      value: this.month,
      required: true,
      onchange: (e: Event) => {
        const value = (e.target as HTMLInputElement).value;
        if (!value) return;
        this.month = value;
        void this.load();
      },
    });
    const csv =
      report &&
      h(
        "a",
        {
          id: "report-csv",
          class: "button",
          href: `/api/reports/monthly.csv?${reportQuery(report.community.id, report.month, currentLocale())}`,
          download: "",
        },
        t("reports.csv"),
      );
    this.element.replaceChildren(
      ...present(
        h("h2", {}, report ? `${t("reports.title")} · ${monthName(report.month)}` : t("reports.title")),
        h(
          "div",
          { class: "report-choice" },
          h("label", { for: "report-community" }, t("reports.community"), community),
          h("label", { for: "report-month" }, t("reports.month"), month),
          csv,
        ),
        this.loading && h("p", { role: "status", class: "loading" }, t("reports.loading")),
        this.error !== null && h("p", { class: "error", role: "alert" }, errorText(this.error)),
        report &&
          h(
            "p",
            { class: "report-scope" },
            report.gridId ? `${t("reports.gridOnly")} ` : "",
            t("reports.clock", { zone: zoneName(report.timeZone, report.from) }),
          ),
        ...(report ? summary(report) : []),
        report && h("div", { class: "charts" }, weeklyChart(report), hourChart(report)),
      ),
    );
    if (focused) document.getElementById(focused)?.focus();
  }
}
