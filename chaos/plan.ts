/**
 * The chaos run's messages and the failures planted in them. Message `i` belongs to key
 * `i % keys` and is that key's `⌊i / keys⌋`-th message, so per-key order can be checked from
 * the values alone. Its fate is a pure function of the seed and `i`: a transient failure
 * (the handler fails its first one or two attempts, then succeeds), a permanent one (every
 * attempt fails: the message must end in the dead-letter topic), or none.
 */

export interface PlanOptions {
  messages: number
  keys: number
  /** Share of messages whose first attempts fail (0.05: 5%). */
  transient: number
  /** Share of messages that always fail (0.001: 0.1%). */
  permanent: number
  seed: number
}

/** What the handler reads from a message value. */
export interface PlannedMessage {
  message_type: 'work'
  i: number
  key: string
  seq: number
  /** Attempts that fail before one succeeds (0 for most messages). */
  fail: number
  /** Every attempt fails. */
  permanent: boolean
}

/** 32 well-mixed bits from (seed, i): splitmix32's finaliser, so neighbouring messages are independent. */
function mix(seed: number, i: number): number {
  let z = (Math.imul(seed, 0x9e3779b9) + Math.imul(i, 0x85ebca6b) + 0x6d2b79f5) | 0
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
  return (z ^ (z >>> 15)) >>> 0
}

export function keyOf(i: number, keys: number): string {
  return `key-${i % keys}`
}

export function plannedMessage(i: number, plan: PlanOptions): PlannedMessage {
  const u = mix(plan.seed, i) / 2 ** 32
  const permanent = u < plan.permanent
  const transient = !permanent && u < plan.permanent + plan.transient
  return {
    message_type: 'work',
    i,
    key: keyOf(i, plan.keys),
    seq: Math.floor(i / plan.keys),
    fail: transient ? 1 + (mix(plan.seed + 1, i) & 1) : 0,
    permanent
  }
}

/** The messages planted to fail permanently: exactly these must reach the dead-letter topic. */
export function plantedPermanent(plan: PlanOptions): Set<number> {
  const planted = new Set<number>()
  for (let i = 0; i < plan.messages; i++) if (plannedMessage(i, plan).permanent) planted.add(i)
  return planted
}
