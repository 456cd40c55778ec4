import assert from 'node:assert/strict'
import { test } from 'node:test'
import { brokerLayouts, brokerProperties } from '../../../src/dev/kafka/properties.ts'

function parse(text: string): Map<string, string> {
  return new Map(
    text
      .trim()
      .split('\n')
      .map((line) => {
        const at = line.indexOf('=')
        return [line.slice(0, at), line.slice(at + 1)] as [string, string]
      })
  )
}

test('brokers of a cluster get distinct client, controller and SASL ports ten apart', () => {
  const layouts = brokerLayouts('/tmp/c', 9092, 3, true)
  assert.deepEqual(
    layouts.map((b) => [b.id, b.port, b.controllerPort, b.saslPort]),
    [
      [1, 9092, 9093, 9094],
      [2, 9102, 9103, 9104],
      [3, 9112, 9113, 9114]
    ]
  )
  assert.equal(new Set(layouts.map((b) => b.dir)).size, 3, 'each broker has its own directory')
})

test('a three-broker cluster replicates three times with two in-sync replicas required', () => {
  const layouts = brokerLayouts('/tmp/c', 9092, 3, false)
  const properties = parse(brokerProperties(layouts[1]!, layouts))
  assert.equal(properties.get('node.id'), '2')
  assert.equal(
    properties.get('controller.quorum.voters'),
    '1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113'
  )
  assert.equal(properties.get('default.replication.factor'), '3')
  assert.equal(properties.get('min.insync.replicas'), '2')
  assert.equal(properties.get('offsets.topic.replication.factor'), '3')
  assert.equal(properties.get('transaction.state.log.min.isr'), '2')
  assert.equal(properties.get('advertised.listeners'), 'PLAINTEXT://127.0.0.1:9102')
})

test('a single broker needs no replication and opens SASL_SSL with SCRAM-SHA-512 only when asked', () => {
  const plain = brokerLayouts('/tmp/c', 9092, 1, false)
  const plainProperties = parse(brokerProperties(plain[0]!, plain))
  assert.equal(plainProperties.get('offsets.topic.replication.factor'), '1')
  assert.equal(plainProperties.get('min.insync.replicas'), '1')
  assert.equal(plainProperties.has('sasl.enabled.mechanisms'), false)

  const secured = brokerLayouts('/tmp/c', 9092, 1, true)
  const properties = parse(
    brokerProperties(secured[0]!, secured, { keystoreFile: '/tmp/broker.p12', keystorePassword: 'secret' })
  )
  assert.equal(
    properties.get('listeners'),
    'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SASL_SSL://127.0.0.1:9094'
  )
  assert.equal(properties.get('sasl.enabled.mechanisms'), 'SCRAM-SHA-512')
  assert.equal(properties.get('listener.name.sasl_ssl.ssl.keystore.location'), '/tmp/broker.p12')
  assert.equal(properties.get('inter.broker.listener.name'), 'PLAINTEXT')
})

test('cluster ids never start with "-", which the storage tool would take for an option', async () => {
  const { kafkaUuid } = await import('../../../src/dev/kafka/cluster.ts')
  for (let i = 0; i < 5_000; i++) {
    const id = kafkaUuid()
    assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
  }
})
