/**
 * The latency scenario's producer, in its own process: sends `rate` messages a second for
 * `seconds`, in a batch every 5 ms on a fixed schedule, each stamped with the time it was
 * handed to the client (`performance.timeOrigin + performance.now()`, comparable across
 * processes on one machine). Prints `SENT <count>` at the end.
 */
import { ProduceAcks, Producer } from '@platformatic/kafka'

const [brokers, topic, rateText, secondsText] = process.argv.slice(2)
const rate = Number(rateText)
const seconds = Number(secondsText)
const tick = 5
const perTick = Math.round((rate * tick) / 1000)
const producer = new Producer({
  clientId: 'conveyor-bench-latency',
  bootstrapBrokers: brokers!.split(','),
  idempotent: true,
  acks: ProduceAcks.ALL
})
const now = () => performance.timeOrigin + performance.now()
const ticks = Math.round((seconds * 1000) / tick)
const start = performance.now()
const pending: Promise<unknown>[] = []
let seq = 0
for (let k = 0; k < ticks; k++) {
  const due = start + k * tick
  const wait = due - performance.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  const messages = []
  for (let i = 0; i < perTick; i++) {
    const n = seq++
    messages.push({
      topic: topic!,
      key: Buffer.from(`key-${n % 1_000}`),
      value: Buffer.from(JSON.stringify({ message_type: 'tick', seq: n, sentAt: now() }))
    })
  }
  pending.push(producer.send({ messages }))
  if (pending.length > 1_000) await Promise.all(pending.splice(0, 500))
}
await Promise.all(pending)
await producer.close()
process.stdout.write(`SENT ${seq}\n`)
