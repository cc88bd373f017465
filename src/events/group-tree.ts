/**
 * What one commit group has changed in its users' trees so far, by path segment: for each
 * folder, the files the group added below it less those it removed, and which paths are files
 * the group created. The writer's clash check adds this to what storage held when the group
 * began. Each call walks the path's segments once, with no hashing: its cost follows the
 * path's length, and a group of deep paths costs no more per folder than one of shallow paths.
 */
export class GroupTree {
  readonly #users = new Map<string, TreeNode>()

  /** A file at `path` that was not one before. */
  add(user: string, path: string): void {
    const node = this.#walk(user, path, +1)
    node.created = true
  }

  /** The file at `path` is gone, whether storage held it or this group created it. */
  remove(user: string, path: string): void {
    const node = this.#walk(user, path, -1)
    node.created = false
  }

  /** Files this group added below `path` (as a folder), less those it removed there. */
  changeBelow(user: string, path: string): number {
    let node = this.#users.get(user)
    for (let from = 1; node !== undefined && from <= path.length; ) {
      const to = end(path, from)
      node = node.children?.get(path.slice(from, to))
      from = to + 1
    }
    return node?.below ?? 0
  }

  /** The shallowest folder above `path` that is a file this group created, if one is. */
  createdAbove(user: string, path: string): string | undefined {
    let node = this.#users.get(user)
    for (let from = 1; node !== undefined; ) {
      const to = end(path, from)
      if (to === path.length) return undefined // `path` itself is not above
      node = node.children?.get(path.slice(from, to))
      if (node?.created) return path.slice(0, to)
      from = to + 1
    }
    return undefined
  }

  /** The node of `path`, made where missing, with `by` added below each folder above it. */
  #walk(user: string, path: string, by: number): TreeNode {
    let node = this.#users.get(user)
    if (node === undefined) this.#users.set(user, (node = newNode()))
    for (let from = 1; from <= path.length; ) {
      const to = end(path, from)
      const segment = path.slice(from, to)
      node.children ??= new Map()
      let child = node.children.get(segment)
      if (child === undefined) node.children.set(segment, (child = newNode()))
      // the path's own node counts files below it as a folder: the file itself is not
      if (to < path.length) child.below += by
      node = child
      from = to + 1
    }
    return node
  }
}

interface TreeNode {
  below: number
  created: boolean
  children: Map<string, TreeNode> | undefined
}

const newNode = (): TreeNode => ({ below: 0, created: false, children: undefined })

/** Where the segment starting at `from` ends: the next `/`, or the path's end. */
function end(path: string, from: number): number {
  const at = path.indexOf('/', from)
  return at === -1 ? path.length : at
}
