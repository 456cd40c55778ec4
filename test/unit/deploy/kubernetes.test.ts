import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { dispatcherEnv } from '../../../apps/dispatcher/config.ts'
import { loadConfig } from '../../../src/service/config.ts'

const deploy = new URL('../../../deploy/', import.meta.url)
const manifests = parseAllDocuments(
  readFileSync(new URL('kubernetes/conveyor-service.yaml', deploy), 'utf8')
).map((doc) => doc.toJS() as { apiVersion: string; kind: string; metadata: { name: string } })
const consumerSource = readFileSync(new URL('../../../src/consumer/consumer.ts', import.meta.url), 'utf8')
/** The consumers' default drain timeout, in seconds, as the runtime sets it. */
const drainSeconds = Number(/drainTimeout: ([\d_]+),/.exec(consumerSource)![1]!.replaceAll('_', '')) / 1000

// biome-ignore lint/suspicious/noExplicitAny: manifests are plain YAML objects
const find = (kind: string): any => manifests.find((m) => m.kind === kind)

test('the Kubernetes manifests are valid against the Kubernetes API schemas (kubernetes-models)', () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/ConfigMap': ConfigMap,
    'v1/Secret': Secret,
    'v1/Service': Service,
    'apps/v1/Deployment': Deployment,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget
  }
  assert.deepEqual(manifests.map((m) => m.kind).sort(), [
    'ConfigMap',
    'Deployment',
    'PodDisruptionBudget',
    'Secret',
    'Service'
  ])
  for (const manifest of manifests) {
    const Model = models[`${manifest.apiVersion}/${manifest.kind}`]
    assert.ok(Model, `a model for ${manifest.apiVersion} ${manifest.kind}`)
    assert.doesNotThrow(
      () => new Model(manifest as never).validate(),
      `${manifest.kind} ${manifest.metadata.name}`
    )
  }
  // The validator catches what it should: a wrong type is an error.
  const broken = structuredClone(find('Deployment'))
  broken.spec.replicas = 'three'
  assert.throws(() => new Deployment(broken).validate(), /replicas must be integer/)
})

test("the Deployment's probes, grace period and scrape annotations match what the service serves", async () => {
  const deployment = find('Deployment')
  const pod = deployment.spec.template
  const container = pod.spec.containers[0]
  const directory = mkdtempSync(join(tmpdir(), 'manifest-'))
  const file = join(directory, 'service.yaml')
  writeFileSync(file, find('ConfigMap').data['service.yaml'])
  // The ConfigMap's service.yaml is a configuration Conveyor accepts (the secret comes from env).
  const { config } = await loadConfig({ file, env: { KAFKA_PASSWORD: 'x' } })
  const port = config.http.port
  assert.equal(container.ports[0].containerPort, port)
  assert.equal(container.livenessProbe.httpGet.path, '/health/live')
  assert.equal(container.readinessProbe.httpGet.path, '/health/ready')
  assert.equal(pod.metadata.annotations['prometheus.io/port'], String(port))
  assert.equal(pod.metadata.annotations['prometheus.io/path'], '/metrics')
  assert.ok(
    pod.spec.terminationGracePeriodSeconds > drainSeconds + 5,
    `grace ${pod.spec.terminationGracePeriodSeconds} s > drain ${drainSeconds} s`
  )
  assert.deepEqual(container.args, ['run', '-c', `${container.volumeMounts[0].mountPath}/service.yaml`])
  assert.equal(pod.spec.securityContext.runAsNonRoot, true)
  // The secret the configuration reads is the one the Secret holds.
  const secretRef = container.env.find((e: { name: string }) => e.name === 'KAFKA_PASSWORD').valueFrom
    .secretKeyRef
  assert.ok(secretRef.key in find('Secret').stringData)
  assert.equal(secretRef.name, find('Secret').metadata.name)
})

test('the PodDisruptionBudget and the Service select the Deployment’s pods', () => {
  const labels = find('Deployment').spec.template.metadata.labels
  const matches = (selector: Record<string, string>) =>
    Object.entries(selector).every(([key, value]) => labels[key] === value)
  assert.ok(matches(find('Deployment').spec.selector.matchLabels))
  assert.ok(matches(find('PodDisruptionBudget').spec.selector.matchLabels))
  assert.ok(matches(find('Service').spec.selector))
})

test('docker-compose runs the dispatcher with settings it reads, and a stop grace longer than the drain', () => {
  const compose = parseYaml(readFileSync(new URL('docker/docker-compose.yml', deploy), 'utf8'))
  const dispatcher = compose.services.dispatcher
  for (const name of Object.keys(dispatcher.environment))
    assert.ok(name in dispatcherEnv, `the dispatcher reads ${name}`)
  assert.ok(Number.parseInt(dispatcher.stop_grace_period, 10) > drainSeconds)
  const dockerfile = readFileSync(new URL('docker/Dockerfile', deploy), 'utf8')
  assert.match(dockerfile, /^USER node$/m, 'the image runs as a non-root user')
  assert.match(dockerfile, /HEALTHCHECK[\s\S]*\/health\/live/)
})
