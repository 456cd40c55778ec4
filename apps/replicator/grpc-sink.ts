/**
 * The relations profile's second sink: a relations API over gRPC (the protocol is
 * `relationsApiProto` below), for a store that has no transactions to keep the
 * partition's position in. It takes a lock per `<group>/<partition>` when a partition is
 * assigned and sends the lock's fencing token with every write, so a member that lost the
 * partition is refused (FAILED_PRECONDITION → `FencedError`). Each event deletes its
 * `relations_to_remove`, then creates (upserts) its `relations_to_add`: both idempotent, so
 * the events replayed after a crash from the group's committed offset change nothing that
 * was already applied. That is *effectively once*; the PostgreSQL sink's exactly-once needs
 * the position in the same transaction as the changes.
 *
 * Needs `@grpc/grpc-js` and `@grpc/proto-loader` installed beside Conveyor.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConveyorError, ErrorCodes } from '../../src/core/errors.ts'
import { type Acquired, FencedError, type FencedSink, type ReplicaEvent } from '../../src/replicator/sink.ts'
import type { TopicPartition } from '../../src/transport/types.ts'
import type { RelationsChange, Relationship } from './relations.ts'

/**
 * The relations API's protocol, as the proto file it is (written to a temporary file for
 * the proto loader: the package ships no sources beside its built modules).
 */
export const relationsApiProto = `// The relations API the replicator's gRPC sink speaks: tuples written under a lock per
// partition, each write carrying the lock's fencing token (a stale token is refused with
// FAILED_PRECONDITION). Shaped like the relations APIs of relationship-based access systems.
syntax = "proto3";

package conveyor.relations.v1;

message ObjectType {
  string namespace = 1;
  string name = 2;
}

message ObjectReference {
  ObjectType type = 1;
  string id = 2;
}

message SubjectReference {
  // The subject set's relation (\`group:g1#member\`); empty for a plain subject.
  string relation = 1;
  ObjectReference subject = 2;
}

message Relationship {
  ObjectReference resource = 1;
  string relation = 2;
  SubjectReference subject = 3;
}

message FencingCheck {
  string lock_id = 1;
  string lock_token = 2;
}

message AcquireLockRequest {
  string lock_id = 1;
}

message AcquireLockResponse {
  string lock_token = 1;
}

message CreateTuplesRequest {
  bool upsert = 1;
  repeated Relationship tuples = 2;
  FencingCheck fencing_check = 3;
}

message CreateTuplesResponse {}

message DeleteTuplesRequest {
  repeated Relationship tuples = 1;
  FencingCheck fencing_check = 2;
}

message DeleteTuplesResponse {}

service RelationTuples {
  // Takes the lock: every earlier token of it is stale from now on.
  rpc AcquireLock(AcquireLockRequest) returns (AcquireLockResponse);
  rpc CreateTuples(CreateTuplesRequest) returns (CreateTuplesResponse);
  rpc DeleteTuples(DeleteTuplesRequest) returns (DeleteTuplesResponse);
}
`

/** Loads the protocol through a temporary proto file, removed once read. */
async function loadProto(loader: GrpcModules['loader']) {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-relations-api-'))
  try {
    const file = join(dir, 'relations-api.proto')
    writeFileSync(file, relationsApiProto)
    return await loader.load(file, { keepCase: true, defaults: true })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

type Callback<T> = (error: (Error & { code?: number; details?: string }) | null, value?: T) => void
interface RelationTuplesClient {
  AcquireLock(
    request: { lock_id: string },
    options: { deadline: Date },
    callback: Callback<{ lock_token: string }>
  ): void
  CreateTuples(request: unknown, options: { deadline: Date }, callback: Callback<unknown>): void
  DeleteTuples(request: unknown, options: { deadline: Date }, callback: Callback<unknown>): void
  close(): void
}

interface GrpcModules {
  grpc: typeof import('@grpc/grpc-js')
  loader: typeof import('@grpc/proto-loader')
}

/** gRPC's status code for a refused precondition: here, a stale fencing token. */
const FAILED_PRECONDITION = 9

async function loadGrpc(): Promise<GrpcModules> {
  try {
    const [grpc, loader] = await Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')])
    return { grpc, loader }
  } catch (error) {
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      'the gRPC relations sink needs @grpc/grpc-js and @grpc/proto-loader: npm install @grpc/grpc-js @grpc/proto-loader',
      { cause: error, path: 'relationsApi' }
    )
  }
}

/** The relations API's service definition, loaded from the proto file (for clients and test servers). */
export async function relationsApiDefinition() {
  const { grpc, loader } = await loadGrpc()
  const definition = await loadProto(loader)
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    conveyor: { relations: { v1: { RelationTuples: import('@grpc/grpc-js').ServiceClientConstructor } } }
  }
  return { grpc, RelationTuples: loaded.conveyor.relations.v1.RelationTuples }
}

export interface GrpcRelationsSinkOptions {
  /** `host:port` of the relations API. */
  address: string
  groupId: string
  /** Deadline of each call, ms. Default 10 000. */
  timeout?: number
  /** TLS (the system's CAs) instead of a plaintext connection. Default false. */
  tls?: boolean
}

export interface GrpcRelationsSink extends FencedSink<RelationsChange, string> {
  close(): void
}

function tuple({ resource, relation, subject }: Relationship) {
  return {
    resource: { type: resource.type, id: resource.id },
    relation,
    subject: {
      relation: subject.relation ?? '',
      subject: { type: subject.subject.type, id: subject.subject.id }
    }
  }
}

export async function grpcRelationsSink(options: GrpcRelationsSinkOptions): Promise<GrpcRelationsSink> {
  const { grpc, RelationTuples } = await relationsApiDefinition()
  const credentials = options.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure()
  const client = new RelationTuples(options.address, credentials) as unknown as RelationTuplesClient
  const timeout = options.timeout ?? 10_000
  const call = <T>(
    method: 'AcquireLock' | 'CreateTuples' | 'DeleteTuples',
    request: unknown,
    tp: TopicPartition
  ) =>
    new Promise<T>((resolve, reject) => {
      ;(client[method] as (r: unknown, o: { deadline: Date }, c: Callback<T>) => void)(
        request,
        { deadline: new Date(Date.now() + timeout) },
        (error, value) => {
          if (!error) resolve(value as T)
          else if (error.code === FAILED_PRECONDITION)
            reject(
              new FencedError(
                tp,
                `the relations API refused the lock token (${error.details ?? error.message})`
              )
            )
          else reject(error)
        }
      )
    })
  const lockId = (tp: TopicPartition) => `${options.groupId}/${tp.partition}`
  return {
    async acquire(tp): Promise<Acquired<string>> {
      const { lock_token } = await call<{ lock_token: string }>('AcquireLock', { lock_id: lockId(tp) }, tp)
      return { token: lock_token, next: undefined } // the group's committed offset: the API keeps no position
    },
    async write(tp, events: readonly ReplicaEvent<RelationsChange>[], _next, token) {
      const fencing_check = { lock_id: lockId(tp), lock_token: token }
      for (const { value } of events) {
        if (value.relationsToRemove.length > 0)
          await call('DeleteTuples', { tuples: value.relationsToRemove.map(tuple), fencing_check }, tp)
        if (value.relationsToAdd.length > 0)
          await call(
            'CreateTuples',
            { upsert: true, tuples: value.relationsToAdd.map(tuple), fencing_check },
            tp
          )
      }
    },
    close: () => client.close()
  }
}
