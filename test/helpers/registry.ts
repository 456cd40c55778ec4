import type { TestContext } from 'node:test'
import { EmbeddedRegistry } from '../../src/registry/registry.ts'
import { SchemaRegistryClient } from '../../src/schema/registry-client.ts'
import { cleanup, deleteTopicsAtEnd, testConnection, uniqueName } from './kafka.ts'

/** An embedded registry on its own storage topic and a free port, stopped (and its topic deleted) at the end. */
export async function useRegistry(t: TestContext, { topic = uniqueName('_schemas'), port = 0 } = {}) {
  const registry = new EmbeddedRegistry({ connection: testConnection(), topic, port })
  const url = await registry.start()
  deleteTopicsAtEnd(t, [topic, `${topic}_leader`])
  cleanup(t, () => registry.stop())
  return { registry, url, topic, client: new SchemaRegistryClient({ url, retries: 0 }) }
}
