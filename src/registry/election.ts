import { Consumer, type MessagesStream } from '@platformatic/kafka'
import { clientOptions, type KafkaConnection } from '../kafka/connection.ts'
import { SchemasLog } from './kafka-log.ts'

/**
 * Elects one writer among the registry processes that share a storage topic, so schema
 * ids and versions stay unique: every process joins the consumer group
 * `conveyor-registry:<topic>` on the single-partition storage topic, and the member the
 * group assigns that partition to is the leader. The leader announces its URL in the
 * compacted topic `<topic>_leader`; the others forward writes to it.
 */
export class RegistryElection {
  readonly #connection: KafkaConnection
  readonly #topic: string
  readonly #url: string
  readonly #announcements: SchemasLog
  #consumer: Consumer | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #leader = false
  #leaderUrl: string | undefined

  constructor({ connection, topic, url }: { connection: KafkaConnection; topic: string; url: string }) {
    this.#connection = connection
    this.#topic = topic
    this.#url = url
    this.#announcements = new SchemasLog({ connection, topic: `${topic}_leader` }, (_key, value) => {
      if (value !== null) this.#leaderUrl = (JSON.parse(value) as { url: string }).url
    })
  }

  get isLeader(): boolean {
    return this.#leader
  }

  /** The URL of the current leader as announced, or undefined before any announcement. */
  get leaderUrl(): string | undefined {
    return this.#leader ? this.#url : this.#leaderUrl
  }

  async start(): Promise<void> {
    await this.#announcements.start()
    this.#consumer = new Consumer({
      ...clientOptions({ ...this.#connection, clientId: 'conveyor-registry-election' }),
      groupId: `conveyor-registry:${this.#topic}`,
      autocommit: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000
    })
    this.#consumer.on('consumer:group:join', ({ assignments }) => void this.#assigned(assignments ?? []))
    this.#stream = await this.#consumer.consume({ topics: [this.#topic], mode: 'latest' })
    // Membership is all this consumer is for: it reads nothing.
    this.#stream.on('data', () => {})
    this.#stream.pause()
    await this.#assigned(this.#consumer.assignments ?? [])
  }

  async #assigned(assignments: { topic: string; partitions: number[] }[]): Promise<void> {
    const leader = assignments.some((a) => a.topic === this.#topic && a.partitions.includes(0))
    const became = leader && !this.#leader
    this.#leader = leader
    if (became) {
      await this.#announcements
        .write(
          JSON.stringify({ leader: this.#topic }),
          JSON.stringify({ url: this.#url, since: new Date().toISOString() })
        )
        .catch(() => {})
    }
  }

  /** Reads the latest announcement (after a leader change a follower may not have it yet). */
  async refresh(): Promise<void> {
    await this.#announcements.sync()
  }

  async stop(): Promise<void> {
    this.#leader = false
    await this.#stream?.close().catch(() => {})
    await this.#consumer?.close(true).catch(() => {})
    await this.#announcements.close()
  }
}
