// Reads a topic from the beginning with Kafka's own Java consumer, isolation.level=read_committed,
// and prints each record's value on a line, until `markers` records whose value is "end" were
// read (one per partition, written after the run) or the timeout passes. A peer reader for
// the tests of transactional pipelines: what Kafka's reference client shows as committed.
//
// java -cp "<kafka libs>/*" ReadCommitted.java <bootstrap> <topic> <markers> <timeout ms>
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ReadCommitted {
  public static void main(String[] args) {
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", StringDeserializer.class.getName());
    int markers = Integer.parseInt(args[2]);
    long deadline = System.currentTimeMillis() + Long.parseLong(args[3]);
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = consumer.partitionsFor(args[1]).stream()
          .map(p -> new TopicPartition(p.topic(), p.partition()))
          .collect(Collectors.toList());
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      int seen = 0;
      while (seen < markers && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
          if ("end".equals(record.value())) seen++;
          else System.out.println(record.value());
        }
      }
      if (seen < markers) {
        System.err.println("read " + seen + " of " + markers + " end markers before the timeout");
        System.exit(2);
      }
    }
  }
}
