// The Kafka Streams job maskmesh-stream replaces: reads the input topic, and in mapValues
// masks the card to its last four digits and tokenizes the email the way maskmesh's tokenize
// action does (tok_ + base32 of the first 20 bytes of HMAC-SHA256), exactly_once_v2.
// Usage: MaskStreams BOOTSTRAP INPUT OUTPUT APPLICATION_ID KEY
package io.maskmesh.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

public final class MaskStreams {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final char[] B32 = "abcdefghijklmnopqrstuvwxyz234567".toCharArray();
    private static final ThreadLocal<Mac> MAC = new ThreadLocal<>();
    private static byte[] key;

    static String lastFour(String card) {
        StringBuilder b = new StringBuilder(card.length());
        for (int i = 0; i < card.length(); i++)
            b.append(i < card.length() - 4 ? '*' : card.charAt(i));
        return b.toString();
    }

    static String token(String value) throws Exception {
        Mac mac = MAC.get();
        if (mac == null) {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            MAC.set(mac);
        }
        byte[] d = mac.doFinal(value.getBytes(StandardCharsets.UTF_8));
        StringBuilder b = new StringBuilder("tok_");
        int buf = 0, bits = 0;
        for (int i = 0; i < 20; i++) { // 160 bits: 32 base32 digits, no padding
            buf = (buf << 8) | (d[i] & 0xff);
            bits += 8;
            while (bits >= 5) {
                b.append(B32[(buf >> (bits - 5)) & 31]);
                bits -= 5;
            }
        }
        return b.toString();
    }

    static byte[] mask(byte[] value) {
        try {
            JsonNode n = JSON.readTree(value);
            if (n instanceof ObjectNode o) {
                JsonNode card = o.get("card"), email = o.get("email");
                if (card != null && card.isTextual())
                    o.put("card", lastFour(card.asText()));
                if (email != null && email.isTextual())
                    o.put("email", token(email.asText()));
            }
            return JSON.writeValueAsBytes(n);
        } catch (Exception e) {
            throw new RuntimeException("masking failed", e);
        }
    }

    public static void main(String[] args) throws Exception {
        key = args[4].getBytes(StandardCharsets.UTF_8);
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/kstreams-" + args[3]);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        StreamsBuilder b = new StreamsBuilder();
        b.stream(args[1], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
            .mapValues(MaskStreams::mask)
            .to(args[2], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
        KafkaStreams ks = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            ks.close();
            done.countDown();
        }));
        ks.start();
        done.await();
    }
}
