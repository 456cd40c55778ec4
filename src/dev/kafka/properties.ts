import { join } from 'node:path'

export interface BrokerLayout {
  id: number
  /** PLAINTEXT client port (also the inter-broker listener). */
  port: number
  controllerPort: number
  /** SASL_SSL client port with SCRAM-SHA-512, when the cluster opens one. */
  saslPort: number | undefined
  dir: string
}

/**
 * Ports of broker `id` (1-based): `basePort + 10 × (id − 1)` for PLAINTEXT, +1 for the
 * controller, +2 for SASL_SSL. Broker 1 of the default cluster is 9092/9093/9094.
 */
export function brokerLayouts(
  clusterDir: string,
  basePort: number,
  count: number,
  sasl: boolean
): BrokerLayout[] {
  return Array.from({ length: count }, (_, index) => {
    const port = basePort + 10 * index
    return {
      id: index + 1,
      port,
      controllerPort: port + 1,
      saslPort: sasl ? port + 2 : undefined,
      dir: join(clusterDir, `broker-${index + 1}`)
    }
  })
}

export interface SaslListenerOptions {
  keystoreFile: string
  keystorePassword: string
}

/**
 * The `server.properties` of one combined broker/controller in KRaft mode. With three
 * brokers the cluster replicates everything three times and needs two in sync, so one
 * broker may stop while `acks=all` producers keep working.
 */
export function brokerProperties(
  broker: BrokerLayout,
  all: BrokerLayout[],
  sasl?: SaslListenerOptions
): string {
  const replication = all.length >= 3 ? 3 : 1
  const minIsr = all.length >= 3 ? 2 : 1
  const listeners = [
    `PLAINTEXT://127.0.0.1:${broker.port}`,
    `CONTROLLER://127.0.0.1:${broker.controllerPort}`
  ]
  const advertised = [`PLAINTEXT://127.0.0.1:${broker.port}`]
  if (broker.saslPort !== undefined) {
    listeners.push(`SASL_SSL://127.0.0.1:${broker.saslPort}`)
    advertised.push(`SASL_SSL://127.0.0.1:${broker.saslPort}`)
  }
  const properties: Record<string, string | number> = {
    'process.roles': 'broker,controller',
    'node.id': broker.id,
    'controller.quorum.voters': all.map((b) => `${b.id}@127.0.0.1:${b.controllerPort}`).join(','),
    listeners: listeners.join(','),
    'advertised.listeners': advertised.join(','),
    'inter.broker.listener.name': 'PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
    'log.dirs': join(broker.dir, 'data'),
    'num.partitions': 1,
    'default.replication.factor': replication,
    'min.insync.replicas': minIsr,
    'offsets.topic.replication.factor': replication,
    'offsets.topic.num.partitions': 10,
    'transaction.state.log.replication.factor': replication,
    'transaction.state.log.min.isr': minIsr,
    'transaction.state.log.num.partitions': 10,
    'share.coordinator.state.topic.replication.factor': replication,
    'share.coordinator.state.topic.min.isr': minIsr,
    // Topics are created on purpose (by Conveyor or the test), as on most production clusters.
    'auto.create.topics.enable': 'false',
    'group.initial.rebalance.delay.ms': 0,
    'log.segment.bytes': 64 * 1024 * 1024,
    'log.retention.check.interval.ms': 60_000
  }
  if (sasl && broker.saslPort !== undefined) {
    Object.assign(properties, {
      'sasl.enabled.mechanisms': 'SCRAM-SHA-512',
      'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config':
        'org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.sasl_ssl.ssl.keystore.type': 'PKCS12',
      'listener.name.sasl_ssl.ssl.keystore.location': sasl.keystoreFile,
      'listener.name.sasl_ssl.ssl.keystore.password': sasl.keystorePassword,
      'listener.name.sasl_ssl.ssl.key.password': sasl.keystorePassword,
      'listener.name.sasl_ssl.ssl.client.auth': 'none'
    })
  }
  return `${Object.entries(properties)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')}\n`
}

/** Log4j 2 configuration writing everything at INFO to `<dir>/server.log`. */
export function log4jProperties(logFile: string): string {
  return [
    'status = warn',
    'appender.file.type = File',
    'appender.file.name = file',
    `appender.file.fileName = ${logFile}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = INFO',
    'rootLogger.appenderRef.file.ref = file',
    'logger.state.name = state.change.logger',
    'logger.state.level = WARN',
    ''
  ].join('\n')
}
