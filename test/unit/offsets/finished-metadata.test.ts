/**
 * The finished-offsets encoding of commit metadata against a reference model: random
 * finished sets round-trip exactly when they fit, never exceed the size limit, and when
 * cut keep only a prefix — so a reader never skips an offset that had not finished.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  decodeFinished,
  encodeFinished,
  finishedMetadataPrefix,
  inRuns
} from '../../../src/offsets/finished-metadata.ts'

/** A small seeded generator, so a failure can be replayed. */
function generator(seed: number) {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}

function randomFinished(random: () => number, committed: bigint, span: number): bigint[] {
  const density = random()
  const runny = random() < 0.5
  const finished: bigint[] = []
  let on = random() < density
  for (let i = 1; i <= span; i++) {
    if (runny ? random() < 0.05 : true) on = runny ? !on : random() < density
    if (on) finished.push(committed + BigInt(i))
  }
  return finished
}

function decodedOffsets(committed: bigint, metadata: string): Set<bigint> {
  const set = new Set<bigint>()
  for (const run of decodeFinished(committed, metadata))
    for (let offset = run.from; offset < run.to; offset++) set.add(offset)
  return set
}

test('random finished sets round-trip exactly when they fit, and are cut to a prefix when they do not', () => {
  const random = generator(42)
  let cut = 0
  for (let round = 0; round < 500; round++) {
    const committed = BigInt(Math.floor(random() * 2 ** 40))
    const finished = randomFinished(random, committed, 1 + Math.floor(random() * 3_000))
    const limit = [64, 256, 4_096][round % 3]!
    const metadata = encodeFinished(committed, finished, limit)
    assert.ok(metadata.length <= limit, `round ${round}: ${metadata.length} > ${limit}`)
    const decoded = decodedOffsets(committed, metadata)
    const expected = new Set(finished)
    for (const offset of decoded)
      assert.ok(expected.has(offset), `round ${round}: ${offset} had not finished`)
    if (decoded.size === expected.size) continue
    cut++
    // Cut: every finished offset up to the highest one kept is kept (a prefix of the runs).
    const highest = [...decoded].reduce((a, b) => (b > a ? b : a), committed)
    for (const offset of finished) if (offset <= highest) assert.ok(decoded.has(offset), `round ${round}`)
  }
  assert.ok(cut > 0, 'some sets were too big for their limit, so cutting was exercised')
})

test('a contiguous block of finished offsets costs a few bytes, whatever its size', () => {
  const committed = 1_000_000n
  const block = Array.from({ length: 100_000 }, (_, i) => committed + 2n + BigInt(i))
  const metadata = encodeFinished(committed, block)
  assert.ok(metadata.length < finishedMetadataPrefix.length + 16, metadata)
  assert.deepEqual(decodeFinished(committed, metadata), [{ from: committed + 2n, to: committed + 100_002n }])
})

test('in the worst case, every other offset finished, the default limit holds about 1 500 runs', () => {
  const committed = 0n
  const alternate = Array.from({ length: 10_000 }, (_, i) => BigInt(2 * i + 1))
  const metadata = encodeFinished(committed, alternate)
  assert.ok(metadata.length <= 4_096)
  const runs = decodeFinished(committed, metadata)
  assert.ok(runs.length > 1_400 && runs.length < 1_600, `${runs.length} runs`)
})

test('metadata of another format, another offset or damaged bytes yields nothing to skip', () => {
  const metadata = encodeFinished(10n, [12n, 13n, 15n])
  assert.deepEqual(decodeFinished(10n, metadata), [
    { from: 12n, to: 14n },
    { from: 15n, to: 16n }
  ])
  assert.deepEqual(decodeFinished(11n, metadata), [], 'the offset was committed by something else')
  assert.deepEqual(decodeFinished(10n, ''), [])
  assert.deepEqual(decodeFinished(10n, null), [])
  assert.deepEqual(decodeFinished(10n, 'a note from an operator'), [])
  assert.deepEqual(decodeFinished(10n, `${finishedMetadataPrefix}gA`), [], 'a varint cut short')
  assert.deepEqual(decodeFinished(10n, metadata.slice(0, -1)), [], 'a run cut in half')
})

test('nothing to record gives empty metadata; offsets at or below the commit are not recorded', () => {
  assert.equal(encodeFinished(5n, []), '')
  assert.equal(encodeFinished(5n, [3n, 5n]), '')
  assert.deepEqual(decodeFinished(5n, encodeFinished(5n, [4n, 5n, 6n])), [{ from: 6n, to: 7n }])
})

test('inRuns tells an offset inside a run from one outside', () => {
  const runs = decodeFinished(0n, encodeFinished(0n, [2n, 3n, 7n, 9n, 10n]))
  const inside = [2n, 3n, 7n, 9n, 10n]
  for (let offset = 0n; offset < 12n; offset++) assert.equal(inRuns(runs, offset), inside.includes(offset))
})
