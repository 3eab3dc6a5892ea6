const NO_CHILDREN: TopicNode[] = []
/** A `+` over fewer children than this walks them: the cache below pays off only for large fan-outs. */
const CACHE_FROM_CHILDREN = 1024
/** Literal levels cached per node: SUBSCRIBEs with ever new literals must not grow a node without bound. */
const CACHED_LEVELS_MAX = 32

/**
 * The children of a node with more than one, by name; and, for a `+` over them followed by a literal level, the
 * children that have a child of that name, by name, made by the first such lookup and kept up to date from then on
 * (grandchildAdded / grandchildRemoved). Held by the map rather than by every node: only a node with many children
 * ever has them, and every stored topic makes a node or two.
 */
class Children extends Map<string, TopicNode> {
  withChild: Map<string, Set<TopicNode>> | undefined = undefined
}

/**
 * One topic level: three fields, since the tree holds a node per level of every retained topic (the nodes and
 * what they hold are most of the index's heap, and all of it survives into the old generation).
 */
class TopicNode {
  readonly name: string
  /** Set when a retained message exists for the topic that ends at this node. */
  topic: string | undefined = undefined
  /** Most nodes have a single child, held directly; more are held in a Children map. */
  #kids: TopicNode | Children | undefined = undefined

  constructor (name: string) {
    this.name = name
  }

  get hasChildren (): boolean {
    return this.#kids !== undefined
  }

  child (level: string): TopicNode | undefined {
    const kids = this.#kids
    if (kids instanceof TopicNode) return kids.name === level ? kids : undefined
    return kids?.get(level)
  }

  get childCount (): number {
    const kids = this.#kids
    return kids instanceof TopicNode ? 1 : kids?.size ?? 0
  }

  /**
   * The children having a child named `level`, or undefined when walking the children is as cheap (few of them, or
   * the cache full). `a/+/c` over 100,000 children of `a` walks them once (2-6 ms) and then finds the 100 that have
   * a `c` at once. Only sparse answers are kept: a set holding most of the children saves little and costs memory.
   */
  childrenWith (level: string): Iterable<TopicNode> | undefined {
    const kids = this.#kids
    if (!(kids instanceof Children)) return undefined
    const cached = kids.withChild?.get(level)
    if (cached !== undefined) return cached
    if (kids.size < CACHE_FROM_CHILDREN || (kids.withChild?.size ?? 0) >= CACHED_LEVELS_MAX) return undefined
    const found = new Set<TopicNode>()
    for (const child of kids.values()) if (child.child(level) !== undefined) found.add(child)
    if (found.size * 4 <= kids.size) (kids.withChild ??= new Map()).set(level, found)
    return found
  }

  grandchildAdded (child: TopicNode, level: string): void {
    const kids = this.#kids
    if (kids instanceof Children) kids.withChild?.get(level)?.add(child)
  }

  grandchildRemoved (child: TopicNode, level: string): void {
    const kids = this.#kids
    if (kids instanceof Children) kids.withChild?.get(level)?.delete(child)
  }

  children (): Iterable<TopicNode> {
    const kids = this.#kids
    if (kids instanceof TopicNode) return [kids]
    return kids?.values() ?? NO_CHILDREN
  }

  add (child: TopicNode): void {
    const kids = this.#kids
    if (kids === undefined) {
      this.#kids = child
    } else if (kids instanceof TopicNode) {
      const many = new Children()
      many.set(kids.name, kids)
      many.set(child.name, child)
      this.#kids = many
    } else {
      kids.set(child.name, child)
    }
  }

  remove (level: string): void {
    const kids = this.#kids
    if (kids instanceof TopicNode) {
      if (kids.name === level) this.#kids = undefined
      return
    }
    if (kids === undefined) return
    kids.delete(level)
    // back to a single child (or none): the cache of `+` lookups goes with the map, made again if they grow back
    if (kids.size <= 1) this.#kids = kids.values().next().value
  }
}

/**
 * The retained topics as a tree of levels (payloads stay on disk). An exact filter is a walk down its levels; a
 * wildcard filter visits only the branches it can match, so SUBSCRIBE `a/+/c` never scans unrelated topics.
 */
export class RetainedIndex {
  readonly #root = new TopicNode('')
  #count = 0

  get count (): number {
    return this.#count
  }

  has (topic: string): boolean {
    return this.#find(topic)?.topic !== undefined
  }

  /** Returns false if the topic was already present. */
  add (topic: string): boolean {
    let node = this.#root
    let parent: TopicNode | undefined
    // levels cut out one at a time rather than by split: no array per stored retained message
    for (let start = 0; start <= topic.length;) {
      let end = topic.indexOf('/', start)
      if (end === -1) end = topic.length
      const level = topic.slice(start, end)
      let child = node.child(level)
      if (child === undefined) {
        child = new TopicNode(level)
        node.add(child)
        parent?.grandchildAdded(node, level)
      }
      parent = node
      node = child
      start = end + 1
    }
    if (node.topic !== undefined) return false
    node.topic = topic
    this.#count++
    return true
  }

  /** Returns false if the topic was not present. */
  remove (topic: string): boolean {
    const levels = topic.split('/')
    const path: TopicNode[] = [this.#root]
    let node: TopicNode | undefined = this.#root
    for (const level of levels) {
      node = node.child(level)
      if (node === undefined) return false
      path.push(node)
    }
    if (node.topic === undefined) return false
    node.topic = undefined
    this.#count--
    for (let i = levels.length; i > 0; i--) {
      const current = path[i]
      if (current.topic !== undefined || current.hasChildren) break
      path[i - 1].remove(levels[i - 1])
      if (i >= 2) path[i - 2].grandchildRemoved(path[i - 1], levels[i - 1])
    }
    return true
  }

  /**
   * Topics matching an MQTT filter, lazily. Per [MQTT-4.7.2-1] a filter starting with `+` or `#` does not match
   * topics whose first level starts with `$`.
   */
  * match (filter: string): Generator<string> {
    const levels = filter.split('/')
    if (!levels.includes('+') && !levels.includes('#')) {
      const topic = this.#find(filter)?.topic
      if (topic !== undefined) yield topic
      return
    }
    yield * this.#walk(levels)
  }

  #find (topic: string): TopicNode | undefined {
    let node: TopicNode | undefined = this.#root
    for (const level of topic.split('/')) {
      node = node.child(level)
      if (node === undefined) return undefined
    }
    return node
  }

  /**
   * Depth-first over the filter with an explicit stack: no generator per visited node, and the literal levels
   * after a `+` are resolved per child with direct lookups, so `a/+/c` over 100k children of `a` stays in the
   * low milliseconds.
   */
  * #walk (levels: string[]): Generator<string> {
    const stack: Array<{ node: TopicNode, depth: number }> = [{ node: this.#root, depth: 0 }]
    while (stack.length > 0) {
      const { node, depth } = stack.pop() as { node: TopicNode, depth: number }
      if (depth === levels.length) {
        if (node.topic !== undefined) yield node.topic
        continue
      }
      const level = levels[depth]
      if (level === '#') {
        // `a/#` also matches `a` itself
        if (node.topic !== undefined && depth > 0) yield node.topic
        yield * this.#all(node, depth === 0)
        continue
      }
      if (level !== '+') {
        const child = node.child(level)
        if (child !== undefined) stack.push({ node: child, depth: depth + 1 })
        continue
      }
      let literalEnd = depth + 1
      while (literalEnd < levels.length && levels[literalEnd] !== '+' && levels[literalEnd] !== '#') literalEnd++
      const deeper: Array<{ node: TopicNode, depth: number }> = []
      const skipDollar = depth === 0
      const candidates = literalEnd > depth + 1 ? node.childrenWith(levels[depth + 1]) : undefined
      for (const child of candidates ?? node.children()) {
        if (skipDollar && child.name.charCodeAt(0) === 36) continue
        let target: TopicNode | undefined = child
        for (let next = depth + 1; next < literalEnd && target !== undefined; next++) target = target.child(levels[next])
        if (target === undefined) continue
        if (literalEnd === levels.length) {
          if (target.topic !== undefined) yield target.topic
        } else {
          deeper.push({ node: target, depth: literalEnd })
        }
      }
      for (let i = deeper.length - 1; i >= 0; i--) stack.push(deeper[i])
    }
  }

  * #all (node: TopicNode, skipDollar: boolean): Generator<string> {
    const stack: TopicNode[] = []
    for (const child of node.children()) {
      if (skipDollar && child.name.charCodeAt(0) === 36) continue
      stack.push(child)
    }
    stack.reverse()
    while (stack.length > 0) {
      const current = stack.pop() as TopicNode
      if (current.topic !== undefined) yield current.topic
      const children = [...current.children()]
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i])
    }
  }
}
