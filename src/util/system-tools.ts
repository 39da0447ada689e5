import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The registry of system tools Netloom runs (hack/system-tools.tsv), read by hack/install-deps.sh
 * too, so "what is missing" and "how to install it" cannot disagree between the installer and
 * the messages of a skipped test or a simulated demo.
 */
export interface SystemTool {
  /** A command looked up on PATH, or (starting with /) a file a library package ships. */
  name: string;
  /** The Debian package that provides it; undefined for tools not taken from Debian. */
  debianPackage: string | undefined;
  neededBy: string;
}

export const SYSTEM_TOOLS_FILE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../../hack/system-tools.tsv",
);

export function parseSystemTools(text: string): Map<string, SystemTool> {
  const tools = new Map<string, SystemTool>();
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const [name, pkg, neededBy] = line.split("\t");
    if (!name || !pkg || !neededBy)
      throw new Error(`hack/system-tools.tsv line ${i + 1}: want name<TAB>package<TAB>needed by`);
    tools.set(name, { name, debianPackage: pkg === "-" ? undefined : pkg, neededBy });
  }
  return tools;
}

let registry: Map<string, SystemTool> | undefined;

export function systemTools(): Map<string, SystemTool> {
  registry ??= parseSystemTools(readFileSync(SYSTEM_TOOLS_FILE, "utf8"));
  return registry;
}

function registered(name: string): SystemTool {
  const tool = systemTools().get(name);
  if (!tool) throw new Error(`${name} is not in hack/system-tools.tsv: add it there first`);
  return tool;
}

/** Whether a command is on PATH (an executable file), or a file exists. */
export function toolPresent(name: string, path = process.env.PATH ?? ""): boolean {
  if (name.startsWith("/")) return existsSync(name);
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** The registered tools among `names` that this machine lacks. */
export function missingTools(names: readonly string[]): SystemTool[] {
  return names.map(registered).filter((t) => !toolPresent(t.name));
}

/** One sentence: what is missing, from which package, and the command that installs it. */
export function describeMissing(missing: readonly SystemTool[]): string {
  const debian = [...new Set(missing.flatMap((t) => t.debianPackage ?? []))];
  const other = missing.filter((t) => t.debianPackage === undefined);
  const parts = [`needs ${missing.map((t) => t.name).join(", ")}`];
  if (debian.length)
    parts.push(
      `Debian package${debian.length > 1 ? "s" : ""} ${debian.join(", ")}: as root, \`make deps\` installs ${debian.length > 1 ? "them" : "it"}`,
    );
  for (const t of other) parts.push(`${t.name}: ${t.neededBy}`);
  return parts.join("; ");
}

/** Why these tools cannot run here (describeMissing), or undefined when all are present. */
export function toolsRequirement(names: readonly string[]): string | undefined {
  const missing = missingTools(names);
  return missing.length ? describeMissing(missing) : undefined;
}

/** Runs hack/install-deps.sh (as root: apt-get installs every registered package missing here). */
export function installSystemTools(): void {
  execFileSync("bash", [resolve(dirname(SYSTEM_TOOLS_FILE), "install-deps.sh")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
}
