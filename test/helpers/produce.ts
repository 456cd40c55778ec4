import type { Producer } from '@platformatic/kafka'

/** Produces `count` JSON commands over `keys` keys; each carries its key and its sequence number within the key. */
export async function produceKeyed(
  producer: Producer<string, string, string, string>,
  topic: string,
  { count, keys, type = 'work', from = 0 }: { count: number; keys: number; type?: string; from?: number }
): Promise<void> {
  const batch = 500
  for (let start = from; start < from + count; start += batch) {
    const messages = []
    for (let i = start; i < Math.min(from + count, start + batch); i++) {
      const key = `key-${i % keys}`
      messages.push({
        topic,
        key,
        value: JSON.stringify({ message_type: type, key, seq: Math.floor(i / keys) })
      })
    }
    await producer.send({ messages })
  }
}

export interface Handled {
  key: string
  seq: number
  partition: number
  offset: bigint
}

/**
 * Checks per-key order: for each key the sequence numbers, once re-deliveries (a number
 * already seen) are set aside, run 0, 1, 2, … with no gap. Returns the problems found.
 */
export function orderViolations(handled: Handled[], perKey: number): string[] {
  const problems: string[] = []
  const next = new Map<string, number>()
  for (const { key, seq } of handled) {
    const expected = next.get(key) ?? 0
    if (seq < expected) continue // handled again (at least once)
    if (seq !== expected) problems.push(`${key}: got ${seq}, expected ${expected}`)
    next.set(key, seq + 1)
  }
  for (const [key, n] of next) if (n !== perKey) problems.push(`${key}: ${n} of ${perKey} handled`)
  return problems
}
