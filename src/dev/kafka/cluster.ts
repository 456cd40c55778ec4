import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Admin } from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { waitFor } from '../../util/wait.ts'
import { defaultKafkaVersion, ensureKafkaJars } from './jars.ts'
import { isOurProcess, terminate } from './process.ts'
import { type BrokerLayout, brokerLayouts, brokerProperties, log4jProperties } from './properties.ts'
import { ensureTlsMaterial } from './tls.ts'

export interface LocalKafkaOptions {
  /** Clusters with different names live side by side (own ports, data and pids). */
  name?: string
  /** 1 for a single combined node; 3 for a replicated cluster (RF 3, min.insync.replicas 2). */
  brokers?: number
  /** PLAINTEXT port of broker 1; see `brokerLayouts` for the others. */
  port?: number
  /** Also open a SASL_SSL listener with SCRAM-SHA-512 on every broker. */
  sasl?: boolean
  /** Apache Kafka release to run. */
  version?: string
  /** Cache root for jars, certificates and cluster state. */
  home?: string
  /** Maximum JVM heap of each broker. */
  heap?: string
  /** How long `up` waits for the brokers to answer. */
  startTimeout?: number
  log?: (line: string) => void
}

export interface ScramCredentials {
  mechanism: 'SCRAM-SHA-512'
  username: string
  password: string
}

export interface BrokerStatus {
  id: number
  pid: number | undefined
  running: boolean
  address: string
  saslAddress: string | undefined
  logFile: string
}

export interface ClusterInfo {
  name: string
  version: string
  clusterId: string
  /** PLAINTEXT bootstrap addresses, `host:port`. */
  bootstrap: string[]
  /** Present when the cluster has a SASL_SSL listener. */
  sasl: { bootstrap: string[]; caFile: string; credentials: ScramCredentials } | undefined
  brokers: BrokerStatus[]
}

interface ClusterState {
  name: string
  version: string
  clusterId: string
  port: number
  brokerCount: number
  sasl: boolean
  pids: Record<string, number>
}

/** The SCRAM user created when the cluster's storage is formatted. */
export const localScramUser: ScramCredentials = {
  mechanism: 'SCRAM-SHA-512',
  username: 'conveyor',
  password: 'conveyor-secret'
}

export function defaultHome(): string {
  return process.env.CONVEYOR_HOME ?? join(homedir(), '.cache', 'conveyor')
}

/**
 * A Kafka cluster on 127.0.0.1 run from the official Apache Kafka jars: KRaft mode, every
 * node a combined broker and controller, started with `java -cp`. State (configuration,
 * data, logs, pids) lives in `<home>/clusters/<name>`, so any process can find, stop or
 * restart a cluster another one started.
 */
export class LocalKafka {
  readonly name: string
  readonly #options: Required<Omit<LocalKafkaOptions, 'log'>>
  readonly #log: (line: string) => void
  readonly #dir: string

  constructor(options: LocalKafkaOptions = {}) {
    const brokers = options.brokers ?? 1
    if (brokers !== 1 && brokers !== 3) {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `brokers must be 1 or 3, got ${brokers}`, {
        path: 'brokers'
      })
    }
    const name = options.name ?? 'dev'
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `cluster name must match [a-z0-9-]+, got "${name}"`,
        {
          path: 'name'
        }
      )
    }
    this.#options = {
      name,
      brokers,
      port: options.port ?? 9092,
      sasl: options.sasl ?? false,
      version: options.version ?? process.env.CONVEYOR_KAFKA_VERSION ?? defaultKafkaVersion,
      home: options.home ?? defaultHome(),
      heap: options.heap ?? '512m',
      startTimeout: options.startTimeout ?? 120_000
    }
    this.name = name
    this.#log = options.log ?? (() => {})
    this.#dir = join(this.#options.home, 'clusters', name)
  }

  /**
   * Starts the cluster and resolves once every broker answers a metadata request that
   * lists all of them. Idempotent: a running cluster is found and reused, brokers that
   * died are restarted on their existing data.
   */
  async up(): Promise<ClusterInfo> {
    let state = this.#readState()
    if (state) {
      this.#checkCompatible(state)
    } else {
      state = await this.#create()
    }
    const layouts = this.#layouts(state)
    const started: number[] = []
    for (const broker of layouts) {
      if (!this.#isRunning(state, broker)) {
        await this.#startBroker(state, broker)
        started.push(broker.id)
      }
    }
    if (started.length === 0) this.#log(`cluster "${this.name}" is already running`)
    await this.#waitReady(state, layouts)
    return this.status()
  }

  /** Stops every broker (SIGTERM, SIGKILL after a grace period); `purge` also deletes data and logs. */
  async down({ purge = false }: { purge?: boolean } = {}): Promise<void> {
    const state = this.#readState()
    if (state) {
      const layouts = this.#layouts(state)
      await Promise.all(layouts.map((broker) => this.#stopBroker(state, broker)))
    }
    if (purge) rmSync(this.#dir, { recursive: true, force: true })
  }

  /** Stops one broker by node id, leaving the others running. */
  async stopBroker(id: number): Promise<void> {
    const state = this.#requireState()
    await this.#stopBroker(state, this.#layout(state, id))
  }

  /** Starts one stopped broker by node id and waits until it answers. */
  async startBroker(id: number): Promise<void> {
    const state = this.#requireState()
    const broker = this.#layout(state, id)
    if (!this.#isRunning(state, broker)) await this.#startBroker(state, broker)
    await this.#waitReady(state, [broker])
  }

  /** What is recorded and what is running now; throws when the cluster was never created. */
  status(): ClusterInfo {
    const state = this.#requireState()
    const layouts = this.#layouts(state)
    const address = (port: number) => `127.0.0.1:${port}`
    return {
      name: state.name,
      version: state.version,
      clusterId: state.clusterId,
      bootstrap: layouts.map((b) => address(b.port)),
      sasl: state.sasl
        ? {
            bootstrap: layouts.map((b) => address(b.saslPort!)),
            caFile: join(this.#options.home, 'tls', 'ca.pem'),
            credentials: { ...localScramUser }
          }
        : undefined,
      brokers: layouts.map((broker) => ({
        id: broker.id,
        pid: state.pids[broker.id],
        running: this.#isRunning(state, broker),
        address: address(broker.port),
        saslAddress: broker.saslPort === undefined ? undefined : address(broker.saslPort),
        logFile: join(broker.dir, 'logs', 'server.log')
      }))
    }
  }

  /** True when the cluster has state on disk (running or not). */
  exists(): boolean {
    return this.#readState() !== undefined
  }

  async #create(): Promise<ClusterState> {
    const { version, home, port, brokers, sasl } = this.#options
    const libs = ensureKafkaJars({ version, home, log: this.#log })
    rmSync(this.#dir, { recursive: true, force: true })
    const state: ClusterState = {
      name: this.name,
      version,
      clusterId: kafkaUuid(),
      port,
      brokerCount: brokers,
      sasl,
      pids: {}
    }
    const layouts = this.#layouts(state)
    for (const broker of layouts) {
      for (const p of [broker.port, broker.controllerPort, broker.saslPort]) {
        if (p !== undefined && !(await isPortFree(p))) {
          throw new ConveyorError(
            ErrorCodes.LOCAL_KAFKA,
            `port ${p} on 127.0.0.1 is taken by another process; choose other ports with --port`
          )
        }
      }
    }
    const tls = sasl ? ensureTlsMaterial(join(home, 'tls')) : undefined
    this.#log(`formatting KRaft storage for ${brokers} broker(s), cluster id ${state.clusterId}`)
    await Promise.all(
      layouts.map(async (broker) => {
        mkdirSync(join(broker.dir, 'logs'), { recursive: true })
        writeFileSync(this.#configFile(broker), brokerProperties(broker, layouts, tls))
        writeFileSync(this.#log4jFile(broker), log4jProperties(join(broker.dir, 'logs', 'server.log')))
        const args = ['format', '--cluster-id', state.clusterId, '--config', this.#configFile(broker)]
        if (sasl) {
          args.push(
            '--add-scram',
            `SCRAM-SHA-512=[name=${localScramUser.username},password=${localScramUser.password}]`
          )
        }
        await runJava(libs, broker, this.#log4jFile(broker), 'kafka.tools.StorageTool', args)
      })
    )
    this.#writeState(state)
    return state
  }

  async #startBroker(state: ClusterState, broker: BrokerLayout): Promise<void> {
    const libs = ensureKafkaJars({ version: state.version, home: this.#options.home, log: this.#log })
    const out = openSync(join(broker.dir, 'logs', 'stdout.log'), 'a')
    const child = spawn(
      'java',
      [
        ...jvmArgs(this.#log4jFile(broker), this.#options.heap),
        '-cp',
        join(libs, '*'),
        'kafka.Kafka',
        this.#configFile(broker)
      ],
      { detached: true, stdio: ['ignore', out, out] }
    )
    closeSync(out)
    child.unref()
    if (child.pid === undefined) {
      throw new ConveyorError(ErrorCodes.LOCAL_KAFKA, `could not start java for broker ${broker.id}`)
    }
    state.pids[broker.id] = child.pid
    this.#writeState(state)
    this.#log(`started broker ${broker.id} (pid ${child.pid}) on 127.0.0.1:${broker.port}`)
  }

  async #stopBroker(state: ClusterState, broker: BrokerLayout): Promise<void> {
    const pid = state.pids[broker.id]
    if (pid !== undefined && isOurProcess(pid, this.#configFile(broker))) {
      // A controlled shutdown takes a few seconds; a broker that lost its quorum may hang.
      const how = await terminate(pid, 30_000)
      this.#log(`stopped broker ${broker.id} (pid ${pid}, ${how})`)
    }
    delete state.pids[broker.id]
    this.#writeState(state)
  }

  async #waitReady(state: ClusterState, brokers: BrokerLayout[]): Promise<void> {
    const expected = state.brokerCount
    await Promise.all(
      brokers.map((broker) =>
        waitFor(
          async () => {
            if (!this.#isRunning(state, broker)) {
              throw new ConveyorError(
                ErrorCodes.LOCAL_KAFKA,
                `broker ${broker.id} exited during start-up; see ${join(broker.dir, 'logs')}:\n${tail(
                  join(broker.dir, 'logs', 'stdout.log')
                )}`
              )
            }
            return (await metadataBrokerCount(`127.0.0.1:${broker.port}`)) >= expected
          },
          { timeout: this.#options.startTimeout, interval: 250, description: `broker ${broker.id} to answer` }
        ).catch((error: unknown) => {
          // A broker that died says why; don't hide that behind a generic timeout.
          const cause = (error as { cause?: unknown }).cause
          if (cause instanceof ConveyorError && cause.code === ErrorCodes.LOCAL_KAFKA) throw cause
          throw error
        })
      )
    )
  }

  #isRunning(state: ClusterState, broker: BrokerLayout): boolean {
    const pid = state.pids[broker.id]
    return pid !== undefined && isOurProcess(pid, this.#configFile(broker))
  }

  #checkCompatible(state: ClusterState): void {
    const { version, port, brokers, sasl } = this.#options
    const differences = [
      state.version !== version && `version ${state.version} (asked ${version})`,
      state.port !== port && `port ${state.port} (asked ${port})`,
      state.brokerCount !== brokers && `${state.brokerCount} broker(s) (asked ${brokers})`,
      state.sasl !== sasl && `SASL listener ${state.sasl ? 'on' : 'off'} (asked ${sasl ? 'on' : 'off'})`
    ].filter(Boolean)
    if (differences.length > 0) {
      throw new ConveyorError(
        ErrorCodes.LOCAL_KAFKA,
        `cluster "${this.name}" exists with ${differences.join(', ')}; run \`down --purge\` first or pick another --name`
      )
    }
  }

  #layouts(state: ClusterState): BrokerLayout[] {
    return brokerLayouts(this.#dir, state.port, state.brokerCount, state.sasl)
  }

  #layout(state: ClusterState, id: number): BrokerLayout {
    const broker = this.#layouts(state).find((b) => b.id === id)
    if (!broker) {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `cluster "${this.name}" has no broker ${id}`, {
        path: 'broker'
      })
    }
    return broker
  }

  #configFile(broker: BrokerLayout): string {
    return join(broker.dir, 'server.properties')
  }

  #log4jFile(broker: BrokerLayout): string {
    return join(broker.dir, 'log4j2.properties')
  }

  #readState(): ClusterState | undefined {
    const file = join(this.#dir, 'cluster.json')
    if (!existsSync(file)) return undefined
    return JSON.parse(readFileSync(file, 'utf8')) as ClusterState
  }

  #requireState(): ClusterState {
    const state = this.#readState()
    if (!state) {
      throw new ConveyorError(
        ErrorCodes.LOCAL_KAFKA,
        `cluster "${this.name}" does not exist; start it with \`up\``
      )
    }
    return state
  }

  #writeState(state: ClusterState): void {
    mkdirSync(this.#dir, { recursive: true })
    writeFileSync(join(this.#dir, 'cluster.json'), `${JSON.stringify(state, null, 2)}\n`)
  }
}

function jvmArgs(log4jFile: string, heap: string): string[] {
  return [
    '-Xms256m',
    `-Xmx${heap}`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4jFile}`
  ]
}

function runJava(libs: string, broker: BrokerLayout, log4jFile: string, mainClass: string, args: string[]) {
  return new Promise<void>((resolve, reject) => {
    const child = spawn('java', [...jvmArgs(log4jFile, '256m'), '-cp', join(libs, '*'), mainClass, ...args], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.stderr.on('data', (chunk) => {
      output += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve()
      else {
        reject(
          new ConveyorError(
            ErrorCodes.LOCAL_KAFKA,
            `${mainClass} failed for broker ${broker.id} (exit ${code}):\n${output}`
          )
        )
      }
    })
  })
}

/** How many brokers a metadata request to `address` reports; throws when it does not answer. */
async function metadataBrokerCount(address: string): Promise<number> {
  const admin = new Admin({
    clientId: 'conveyor-local-kafka',
    bootstrapBrokers: [address],
    retries: 0,
    connectTimeout: 2_000,
    requestTimeout: 5_000
  })
  try {
    const metadata = await admin.metadata({ topics: [] })
    return metadata.brokers.size
  } finally {
    await admin.close().catch(() => {})
  }
}

/**
 * A random Kafka cluster id: 16 bytes in URL-safe base64 without padding, as `kafka-storage
 * random-uuid`. Like Kafka's own generator, never one that starts with "-": the storage tool
 * would read it as an option (`--cluster-id: expected one argument`).
 */
export function kafkaUuid(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url')
    if (!id.startsWith('-')) return id
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no output)'
  }
}
