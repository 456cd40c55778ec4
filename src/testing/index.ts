export type {
  CommitPosition,
  CommittedPosition,
  InboundRecord,
  OutboundRecord,
  Publisher,
  RecordPosition,
  SubscribeOptions,
  Subscription,
  SubscriptionListener,
  TopicPartition,
  Transport
} from '../transport/types.ts'
export { MemoryTransport } from './memory-transport.ts'
