/**
 * A relations API for tests, over real gRPC (`relationsApiProto`, apps/replicator/grpc-sink.ts): tuples in
 * memory, locks whose every acquisition makes the earlier tokens stale (FAILED_PRECONDITION),
 * and failures to plant (UNAVAILABLE for the next N writes).
 */
import type { TestContext } from 'node:test'
import type * as grpcTypes from '@grpc/grpc-js'
import { relationsApiDefinition } from '../../apps/replicator/grpc-sink.ts'
import { cleanup } from './kafka.ts'

interface Tuple {
  resource: { type: { namespace: string; name: string }; id: string }
  relation: string
  subject: { relation: string; subject: { type: { namespace: string; name: string }; id: string } }
}

const text = ({ resource, relation, subject }: Tuple) =>
  `${resource.type.namespace}/${resource.type.name}:${resource.id}#${relation}@${subject.subject.type.namespace}/${subject.subject.type.name}:${subject.subject.id}${subject.relation ? `#${subject.relation}` : ''}`

export interface FakeRelationsApi {
  address: string
  /** The stored tuples, sorted. */
  tuples(): string[]
  /** Writes (create and delete calls) the fence refused. */
  refused: number
  /** Every write call, in order: `create …` or `delete …`. */
  writes: string[]
  /** The next `count` write calls fail with UNAVAILABLE. */
  failNext(count: number): void
  /** Write calls that failed so. */
  unavailable: number
}

export async function useFakeRelationsApi(t: TestContext): Promise<FakeRelationsApi> {
  const { grpc, RelationTuples } = await relationsApiDefinition()
  const stored = new Set<string>()
  const tokens = new Map<string, number>()
  let failing = 0
  const api: FakeRelationsApi = {
    address: '',
    tuples: () => [...stored].sort(),
    refused: 0,
    unavailable: 0,
    writes: [],
    failNext: (count) => {
      failing = count
    }
  }
  type Call<T> = grpcTypes.ServerUnaryCall<T, unknown>
  type Done = grpcTypes.sendUnaryData<unknown>
  const check = (fencing: { lock_id: string; lock_token: string } | undefined, done: Done): boolean => {
    if (failing > 0) {
      failing--
      api.unavailable++
      done({ code: grpc.status.UNAVAILABLE, details: 'planted outage' })
      return false
    }
    if (!fencing || String(tokens.get(fencing.lock_id)) !== fencing.lock_token) {
      api.refused++
      done({ code: grpc.status.FAILED_PRECONDITION, details: `stale token for ${fencing?.lock_id}` })
      return false
    }
    return true
  }
  const server = new grpc.Server()
  server.addService(RelationTuples.service, {
    AcquireLock: (call: Call<{ lock_id: string }>, done: Done) => {
      const next = (tokens.get(call.request.lock_id) ?? 0) + 1
      tokens.set(call.request.lock_id, next)
      done(null, { lock_token: String(next) })
    },
    CreateTuples: (
      call: Call<{ tuples: Tuple[]; fencing_check?: { lock_id: string; lock_token: string } }>,
      done: Done
    ) => {
      if (!check(call.request.fencing_check, done)) return
      for (const tuple of call.request.tuples) {
        stored.add(text(tuple))
        api.writes.push(`create ${text(tuple)}`)
      }
      done(null, {})
    },
    DeleteTuples: (
      call: Call<{ tuples: Tuple[]; fencing_check?: { lock_id: string; lock_token: string } }>,
      done: Done
    ) => {
      if (!check(call.request.fencing_check, done)) return
      for (const tuple of call.request.tuples) {
        stored.delete(text(tuple))
        api.writes.push(`delete ${text(tuple)}`)
      }
      done(null, {})
    }
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound)
    )
  )
  cleanup(t, () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())))
  api.address = `127.0.0.1:${port}`
  return api
}
