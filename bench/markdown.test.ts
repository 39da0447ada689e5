import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatMarkdown } from "./markdown.js";

describe("formatMarkdown (what make bench writes must pass make lint)", () => {
  it("pads tables to their columns and puts a blank line before a list", () => {
    const raw = ["| a | bb |", "| --- | --- |", "| 1000 | ÷ |", "", "By resource:", "- x"].join(
      "\n",
    );
    assert.equal(
      formatMarkdown(raw),
      ["| a    | bb  |", "| ---- | --- |", "| 1000 | ÷   |", "", "By resource:", "", "- x"].join(
        "\n",
      ),
    );
  });
});
