// The health check behind `scripts/kafka.sh check` and `scripts/kafka.sh cluster check`: proves
// that a broker does what foldline's Kafka store needs, with Kafka's own Java client (the
// kafka-clients jar fetched with the broker). Run with the source launcher, so nothing is built:
//
//     java -cp "<kafka libs>/*" scripts/kafka/Check.java BOOTSTRAP [REPLICAS] [--hung]
//
// It prints the cluster's nodes and KRaft quorum, then on a fresh topic with REPLICAS replicas
// (default 1): creates the topic, commits one transaction, aborts another, reads the topic
// `read_committed` and fails unless exactly the committed records come back, then deletes the
// topic. With --hung it also leaves a transaction open past its timeout and checks that the
// broker aborts it (the reader moves past it, the producer is fenced). Exit code 0 = all good.

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Check {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Check.java BOOTSTRAP [REPLICAS] [--hung]");
            System.exit(2);
        }
        String bootstrap = args[0];
        int replicas = 1;
        boolean hung = false;
        for (int i = 1; i < args.length; i++) {
            if (args[i].equals("--hung")) hung = true;
            else replicas = Integer.parseInt(args[i]);
        }
        try {
            run(bootstrap, replicas, hung);
        } catch (Exception e) {
            System.out.println("FAILED: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) System.out.println("  caused by: " + c);
            System.exit(1);
        }
        System.out.println("ok");
    }

    static void run(String bootstrap, int replicas, boolean hung) throws Exception {
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        String topic = "foldline-check-" + UUID.randomUUID();
        try (Admin admin = Admin.create(ap)) {
            var cluster = admin.describeCluster();
            List<String> nodes = new ArrayList<>();
            for (Node n : cluster.nodes().get()) nodes.add(n.id() + "@" + n.host() + ":" + n.port());
            System.out.println("cluster " + cluster.clusterId().get() + ", brokers " + nodes);
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get();
            System.out.println("quorum leader " + q.leaderId() + ", epoch " + q.leaderEpoch()
                + ", voters " + q.voters().stream()
                    .map(r -> r.replicaId() + "(offset " + r.logEndOffset() + ")")
                    .collect(Collectors.toList()));

            admin.createTopics(List.of(new NewTopic(topic, 1, (short) replicas))).all().get();
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            System.out.println("created " + topic + ": replicas "
                + d.partitions().get(0).replicas().stream().map(Node::id).collect(Collectors.toList())
                + ", isr " + d.partitions().get(0).isr().stream().map(Node::id).collect(Collectors.toList()));
            try {
                transactions(bootstrap, topic, hung);
            } finally {
                admin.deleteTopics(List.of(topic)).all().get();
            }
        }
    }

    static KafkaProducer<String, String> producer(String bootstrap, String txnId, int timeoutMs) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, timeoutMs);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    static void transactions(String bootstrap, String topic, boolean hung) throws Exception {
        long t0 = System.nanoTime();
        try (KafkaProducer<String, String> p = producer(bootstrap, topic + "-txn", 10000)) {
            p.initTransactions();
            System.out.printf("init_transactions took %d ms%n", (System.nanoTime() - t0) / 1_000_000);
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "stream-1", "committed-1"));
            p.send(new ProducerRecord<>(topic, "stream-1", "committed-2"));
            p.commitTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "stream-1", "aborted-1"));
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "stream-1", "committed-3"));
            p.commitTransaction();
        }
        List<String> want = List.of("committed-1", "committed-2", "committed-3");
        List<String> got = readCommitted(bootstrap, topic, want.size());
        System.out.println("read_committed saw " + got);
        if (!got.equals(want)) throw new IllegalStateException("expected " + want + ", read " + got);

        if (hung) hungTransaction(bootstrap, topic);
    }

    // Reads the topic from the start until `count` values came back or the LSO is reached.
    static List<String> readCommitted(String bootstrap, String topic, int count) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        List<String> got = new ArrayList<>();
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + 20000;
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) got.add(r.value());
            }
        }
        return got;
    }

    // A producer that begins a transaction and then goes quiet: the coordinator must abort it once
    // transaction.timeout.ms passes, so the last stable offset (and read_committed readers) move on.
    static void hungTransaction(String bootstrap, String topic) throws Exception {
        int timeoutMs = 2000;
        KafkaProducer<String, String> p = producer(bootstrap, topic + "-hung", timeoutMs);
        try {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "stream-2", "hung-1")).get();
            long t0 = System.nanoTime();
            // A later committed record from another producer only becomes readable once the hung
            // transaction is aborted, since it sits behind the hung transaction's first offset.
            try (KafkaProducer<String, String> q = producer(bootstrap, topic + "-after", 10000)) {
                q.initTransactions();
                q.beginTransaction();
                q.send(new ProducerRecord<>(topic, "stream-3", "after-hung"));
                q.commitTransaction();
            }
            List<String> got = readCommitted(bootstrap, topic, 4);
            long waited = (System.nanoTime() - t0) / 1_000_000;
            System.out.println("with a transaction hung (timeout " + timeoutMs + " ms) read_committed saw "
                + got + " after " + waited + " ms");
            if (!got.contains("after-hung") || got.contains("hung-1"))
                throw new IllegalStateException("the hung transaction was not aborted: read " + got);
            try {
                p.send(new ProducerRecord<>(topic, "stream-2", "hung-2")).get();
                p.commitTransaction();
                throw new IllegalStateException("the hung producer could still commit");
            } catch (KafkaException | ExecutionException e) {
                Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
                System.out.println("the hung producer then got " + cause.getClass().getSimpleName()
                    + ": " + cause.getMessage());
            }
        } finally {
            p.close(Duration.ofSeconds(5));
        }
    }
}
