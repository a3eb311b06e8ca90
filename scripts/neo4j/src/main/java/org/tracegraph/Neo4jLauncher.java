package org.tracegraph;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;

/**
 * Runs Neo4j Community embedded with a Bolt connector on 127.0.0.1, for local
 * development and tests. Started and stopped by {@code scripts/neo4j/neo4j.sh}.
 *
 * <p>Environment:
 * <ul>
 *   <li>{@code NEO4J_BOLT_PORT} - Bolt port (default 7687), bound to 127.0.0.1 only.</li>
 *   <li>{@code NEO4J_HOME_DIR} - Neo4j home; store files go to {@code <home>/data},
 *       Neo4j's own logs to {@code <home>/logs} (default {@code scripts/neo4j/.data}).</li>
 *   <li>{@code NEO4J_PAGECACHE} - page cache size, e.g. {@code 512m} (default 512m).</li>
 *   <li>{@code NEO4J_PID_FILE} - if set, this process writes its pid there.</li>
 * </ul>
 *
 * <p>Prints a line starting with {@value #READY_MARKER} once the default database
 * ({@code neo4j}) is available and Bolt is listening, then blocks until the JVM is
 * told to stop (SIGTERM/SIGINT), at which point the DBMS is shut down cleanly.
 */
public final class Neo4jLauncher {

    static final String READY_MARKER = "NEO4J_READY";
    static final String FAILED_MARKER = "NEO4J_FAILED";
    static final String DEFAULT_DATABASE = GraphDatabaseSettings.DEFAULT_DATABASE_NAME; // "neo4j"

    private Neo4jLauncher() {}

    public static void main(String[] args) throws Exception {
        Instant started = Instant.now();
        int port = boltPort();
        Path home = homeDir();
        long pageCache = ByteUnit.parse(env("NEO4J_PAGECACHE", "512m"));
        Path pidFile = pidFile();

        Files.createDirectories(home);
        long pid = ProcessHandle.current().pid();
        if (pidFile != null) {
            Files.writeString(pidFile, pid + "\n", StandardCharsets.UTF_8);
        }
        log("starting Neo4j Community (embedded): pid=%d home=%s bolt=127.0.0.1:%d pagecache=%s",
                pid, home, port, ByteUnit.bytesToString(pageCache));

        final DatabaseManagementService dbms;
        try {
            dbms = new DatabaseManagementServiceBuilder(home)
                    // Bolt on loopback only; advertised address = listen address so that
                    // routing drivers (neo4j:// scheme) are sent back to the same socket.
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                    .setConfig(HttpConnector.enabled, false)
                    .setConfig(HttpsConnector.enabled, false)
                    .setConfig(GraphDatabaseSettings.auth_enabled, false)
                    .setConfig(GraphDatabaseSettings.initial_default_database, DEFAULT_DATABASE)
                    .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                    // Neo4j's own logs (debug.log, query.log, ...) stay in the home dir.
                    .setConfig(GraphDatabaseSettings.logs_directory, home.resolve("logs"))
                    // No phoning home (dbms.usage_report.enabled); the network is not there anyway.
                    .setConfig(GraphDatabaseSettings.udc_enabled, false)
                    // Dev/test store: don't preallocate 256 MiB per transaction log file
                    // (neo4j + system would otherwise take ~512 MiB on disk from the start).
                    .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                    // Internal setting: Netty's default 5 s shutdown quiet period (per event loop
                    // group) made every stop take ~12 s; nothing needs draining on a dev server.
                    .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                    .build();
        } catch (RuntimeException e) {
            System.out.println(FAILED_MARKER + " " + e);
            e.printStackTrace(System.out);
            System.out.flush();
            deletePidFile(pidFile, pid);
            System.exit(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log("shutdown requested, stopping Neo4j");
            try {
                dbms.shutdown();
                log("Neo4j stopped");
            } catch (RuntimeException e) {
                log("error during shutdown: %s", e);
            } finally {
                deletePidFile(pidFile, pid);
                stopped.countDown();
            }
        }, "neo4j-shutdown"));

        GraphDatabaseService db = dbms.database(DEFAULT_DATABASE);
        if (!db.isAvailable(TimeUnit.MINUTES.toMillis(5))) {
            System.out.println(FAILED_MARKER + " database '" + DEFAULT_DATABASE + "' not available after 5 minutes");
            System.out.flush();
            System.exit(1);
        }
        String version = db.executeTransactionally(
                "CALL dbms.components() YIELD versions, edition RETURN versions[0] + ' ' + edition AS v",
                Map.of(),
                result -> result.hasNext() ? String.valueOf(result.next().get("v")) : "unknown");

        System.out.printf("%s bolt://127.0.0.1:%d database=%s version=%s startup=%.1fs%n",
                READY_MARKER, port, DEFAULT_DATABASE, version,
                Duration.between(started, Instant.now()).toMillis() / 1000.0);
        System.out.flush();

        stopped.await();
    }

    private static int boltPort() {
        String raw = env("NEO4J_BOLT_PORT", "7687");
        try {
            int port = Integer.parseInt(raw.trim());
            if (port < 1 || port > 65535) {
                throw new NumberFormatException("out of range");
            }
            return port;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("NEO4J_BOLT_PORT must be a port number, got '" + raw + "'", e);
        }
    }

    /** NEO4J_HOME_DIR, else {@code scripts/neo4j/.data} found from where this class was loaded. */
    private static Path homeDir() throws URISyntaxException {
        String fromEnv = System.getenv("NEO4J_HOME_DIR");
        if (fromEnv != null && !fromEnv.isBlank()) {
            return Path.of(fromEnv).toAbsolutePath().normalize();
        }
        // .../scripts/neo4j/target/classes -> .../scripts/neo4j/.data
        Path classes = Path.of(Neo4jLauncher.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path scriptDir = classes.getParent() != null && classes.getParent().getParent() != null
                ? classes.getParent().getParent()
                : Path.of(".");
        return scriptDir.resolve(".data").toAbsolutePath().normalize();
    }

    private static Path pidFile() {
        String raw = System.getenv("NEO4J_PID_FILE");
        return raw == null || raw.isBlank() ? null : Path.of(raw).toAbsolutePath();
    }

    private static void deletePidFile(Path pidFile, long pid) {
        if (pidFile == null) {
            return;
        }
        try {
            if (Files.exists(pidFile) && Files.readString(pidFile).trim().equals(Long.toString(pid))) {
                Files.delete(pidFile);
            }
        } catch (IOException ignored) {
            // best effort
        }
    }

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? dflt : v;
    }

    private static void log(String fmt, Object... args) {
        System.out.println("[neo4j-launcher " + Instant.now() + "] " + String.format(fmt, args));
        System.out.flush();
    }
}
