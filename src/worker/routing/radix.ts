// A radix tree (compressed trie) over string keys, for the route table (route-table.ts): a
// node per key and per branching point, edges labelled with the run of characters between
// them, children keyed by the label's first char code. Built once per snapshot; lookups walk
// it in place (the walks live with their callers, which know what a node's value means).

export interface RadixEdge<V> {
  label: string;
  node: RadixNode<V>;
}

export interface RadixNode<V> {
  value: V | undefined;
  edges: Map<number, RadixEdge<V>> | undefined;
}

export function radixNode<V>(): RadixNode<V> {
  return { value: undefined, edges: undefined };
}

/** The node for `key` below `root`, added (splitting an edge where the key ends or forks). */
export function radixInsert<V>(root: RadixNode<V>, key: string): RadixNode<V> {
  let node = root;
  let pos = 0;
  while (pos < key.length) {
    node.edges ??= new Map();
    const edge = node.edges.get(key.charCodeAt(pos));
    if (edge === undefined) {
      const leaf = radixNode<V>();
      node.edges.set(key.charCodeAt(pos), { label: key.slice(pos), node: leaf });
      return leaf;
    }
    // The first char matched through the map; extend the common run of label and key (past
    // the key's end charCodeAt is NaN, which equals nothing).
    const label = edge.label;
    let n = 1;
    while (n < label.length && label.charCodeAt(n) === key.charCodeAt(pos + n)) n++;
    if (n < label.length) {
      const mid = radixNode<V>();
      mid.edges = new Map([[label.charCodeAt(n), { label: label.slice(n), node: edge.node }]]);
      edge.label = label.slice(0, n);
      edge.node = mid;
    }
    node = edge.node;
    pos += n;
  }
  return node;
}
