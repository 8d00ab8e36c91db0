// Well-formedness check for the SVG the tools write (no XML parser in node_modules).

import assert from 'node:assert/strict';

/**
 * Well-formed XML, checked by hand (no XML parser in node_modules): every tag is closed in
 * order, attributes are name="value" without raw < or &, text has no raw < and only the five
 * predefined entities. Returns the elements seen (name + attributes) for further checks.
 */
export function parseXml(text: string): Array<{ name: string; attrs: Record<string, string> }> {
  const elements: Array<{ name: string; attrs: Record<string, string> }> = [];
  const stack: string[] = [];
  const entityOk = (s: string) => !/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(s);
  const re = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    assert.ok(entityOk(chunk), `bad entity in text: ${chunk.slice(0, 60)}`);
    assert.ok(!chunk.includes('>') || stack.length > 0 || chunk.trim() === '', `stray > ${chunk}`);
    if (lt < 0) break;
    re.lastIndex = lt;
    const m = re.exec(text);
    assert.ok(m, `malformed tag at ${lt}: ${text.slice(lt, lt + 80)}`);
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else {
      const attrs: Record<string, string> = {};
      for (const a of attrText!.matchAll(/([\w:.-]+)="([^"]*)"/g)) {
        assert.ok(!(a[1]! in attrs), `duplicate attribute ${a[1]}`);
        assert.ok(entityOk(a[2]!), `bad entity in attribute ${a[1]}`);
        attrs[a[1]!] = a[2]!;
      }
      elements.push({ name: name!, attrs });
      if (!selfClose) stack.push(name!);
    }
    i = re.lastIndex;
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(elements[0]?.name, 'svg');
  return elements;
}
