/**
 * A binary min-heap of retry times: the work queue's index of waiting
 * records, earliest first. Entries are never updated in place; the queue
 * drops those that no longer match their record when they reach the top.
 *
 * @module
 */

/** One retry time. */
export interface DueEntry {
  at: number;
  relPath: string;
}

/** A min-heap of {@linkcode DueEntry} by `at`. */
export class DueHeap {
  #items: DueEntry[] = [];

  /** The earliest entry. */
  peek(): DueEntry | undefined {
    return this.#items[0];
  }

  /** Add an entry. */
  push(item: DueEntry): void {
    const items = this.#items;
    items.push(item);
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (items[parent].at <= items[i].at) break;
      [items[parent], items[i]] = [items[i], items[parent]];
      i = parent;
    }
  }

  /** Remove the earliest entry. */
  pop(): void {
    const items = this.#items;
    const last = items.pop()!;
    if (items.length === 0) return;
    items[0] = last;
    for (let i = 0;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && items[left].at < items[smallest].at) smallest = left;
      if (right < items.length && items[right].at < items[smallest].at) smallest = right;
      if (smallest === i) break;
      [items[smallest], items[i]] = [items[i], items[smallest]];
      i = smallest;
    }
  }
}
