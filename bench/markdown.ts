/**
 * Pure: the report laid out as `biome format` lays out Markdown (tables padded to their
 * columns, a blank line before a list), so that `make bench` leaves `make lint` passing.
 */
export function formatMarkdown(text: string): string {
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!lines[i]!.startsWith("|")) {
      const line = lines[i++]!;
      if (line.startsWith("- ") && out.length > 0 && out.at(-1)!.endsWith(":")) out.push("");
      out.push(line);
      continue;
    }
    const rows: string[][] = [];
    while (i < lines.length && lines[i]!.startsWith("|"))
      rows.push(
        lines[i++]!.slice(1, -1)
          .split("|")
          .map((c) => c.trim()),
      );
    const widths = rows[0]!.map((_, c) =>
      Math.max(3, ...rows.filter((_r, k) => k !== 1).map((r) => (r[c] ?? "").length)),
    );
    for (const [k, r] of rows.entries())
      out.push(
        `| ${widths.map((w, c) => (k === 1 ? "-".repeat(w) : (r[c] ?? "").padEnd(w))).join(" | ")} |`,
      );
  }
  return out.join("\n");
}
