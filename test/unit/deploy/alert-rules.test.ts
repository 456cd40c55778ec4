import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const rules = new URL('../../../deploy/prometheus/alerts.yml', import.meta.url).pathname
const dashboard = new URL('../../../deploy/grafana/conveyor-dashboard.json', import.meta.url).pathname
const promtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0
const metricsSource = readFileSync(
  new URL('../../../src/instrumentation/metrics.ts', import.meta.url),
  'utf8'
)

test('the shipped Prometheus alert rules pass promtool check rules', {
  skip: promtool ? false : 'promtool (Debian package prometheus) is not installed; .ci/run installs it'
}, () => {
  const result = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' })
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`)
  assert.match(result.stdout, /SUCCESS: 6 rules found/)
})

test('the alert rules and the dashboard use only metrics Conveyor exports', () => {
  const exported = new Set(
    [...metricsSource.matchAll(/name: `\$\{prefix\}(\w+)`/g)].map((m) => `conveyor_${m[1]}`)
  )
  const lagSource = readFileSync(new URL('../../../src/service/lag-monitor.ts', import.meta.url), 'utf8')
  for (const m of lagSource.matchAll(/name: '(conveyor_\w+)'/g)) exported.add(m[1]!)
  const used = new Set(
    [...`${readFileSync(rules, 'utf8')}${readFileSync(dashboard, 'utf8')}`.matchAll(/conveyor_[a-z_]+/g)].map(
      (m) => m[0].replace(/_(bucket|sum|count)$/, '')
    )
  )
  const unknown = [...used].filter((name) => !exported.has(name))
  assert.deepEqual(unknown, [])
})

const replicatorRules = new URL('../../../deploy/prometheus/replicator-alerts.yml', import.meta.url).pathname

test('the replicator’s alert rules (error rate, stalled, retry rate, blocked partition, fencing) pass promtool check rules', {
  skip: promtool ? false : 'promtool (Debian package prometheus) is not installed; .ci/run installs it'
}, () => {
  const result = spawnSync('promtool', ['check', 'rules', replicatorRules], { encoding: 'utf8' })
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`)
  assert.match(result.stdout, /SUCCESS: 5 rules found/)
})

test('the replicator’s alert rules use only metrics the replicator and the service export', () => {
  const source = readFileSync(new URL('../../../apps/replicator/metrics.ts', import.meta.url), 'utf8')
  const exported = new Set(
    [...source.matchAll(/name: `\$\{prefix\}(\w+)`/g)].map((m) => `conveyor_replicator_${m[1]}`)
  )
  for (const m of metricsSource.matchAll(/name: `\$\{prefix\}(\w+)`/g)) exported.add(`conveyor_${m[1]}`)
  const lagSource = readFileSync(new URL('../../../src/service/lag-monitor.ts', import.meta.url), 'utf8')
  for (const m of lagSource.matchAll(/name: '(conveyor_\w+)'/g)) exported.add(m[1]!)
  const used = new Set(
    [
      ...readFileSync(replicatorRules, 'utf8')
        .split('\n')
        .filter((line) => !line.trimStart().startsWith('#')) // the rules, not the comments
        .join('\n')
        .matchAll(/conveyor_[a-z_]+/g)
    ].map((m) => m[0])
  )
  assert.deepEqual(
    [...used].filter((name) => !exported.has(name)),
    []
  )
  assert.ok(used.has('conveyor_replicator_blocked_partitions'))
})
