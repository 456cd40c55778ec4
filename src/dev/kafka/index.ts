export {
  type BrokerStatus,
  type ClusterInfo,
  defaultHome,
  LocalKafka,
  type LocalKafkaOptions,
  localScramUser,
  type ScramCredentials
} from './cluster.ts'
export { defaultKafkaVersion, ensureKafkaJars, resolveJars } from './jars.ts'
