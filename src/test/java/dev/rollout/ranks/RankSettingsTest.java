package dev.rollout.ranks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The rank settings as an operator writes them, and what a worker is handed. */
class RankSettingsTest {
    @Test
    void oneNodeNeedsNoAddressAndNodesSplitTheRanksEvenly() {
        RankSettings one = RankSettings.of(4, 1, 0, "", 300, 600);
        assertEquals("127.0.0.1", one.initHost());
        assertEquals(0, one.initPort(), "rank 0 takes a free port and hands it on");
        assertEquals(4, one.ranksPerNode());
        assertEquals(Duration.ofSeconds(300), one.stepTimeout());
        RankSettings node2 = RankSettings.of(16, 2, 1, "10.0.0.1:29500", 300, 600);
        assertEquals(8, node2.ranksPerNode());
        assertEquals(8, node2.firstRank());
        assertEquals("10.0.0.1:29500", node2.initAddr());
        RankSettings v6 = RankSettings.of(2, 2, 0, "[fd00::1]:29500", 300, 600);
        assertEquals("fd00::1", v6.initHost());
        assertEquals("[fd00::1]:29500", v6.initAddr(), "written back as it is read");
        assertEquals(41000, RankSettings.of(2, 1, 0, "", 1, 1).withInitPort(41000).initPort());
    }

    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
            "0; 1; 0; ; rollout.tp-size must be at least 1",
            "6; 4; 0; 10.0.0.1:1; not divisible by rollout.nnodes",
            "4; 2; 2; 10.0.0.1:1; rollout.node-rank 2 is not a node",
            "4; 2; 0; ; rollout.dist-init-addr (host:port of node 0) is required",
            "2; 1; 0; localhost; must be host:port",
            "2; 1; 0; localhost:http; must be host:port",
            "2; 1; 0; :29500; must be host:port",
            "2; 1; 0; h:70000; is no TCP port"})
    void badSettingsAreRefusedByName(int tp, int nodes, int node, String addr, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> RankSettings.of(tp, nodes, node, addr, 300, 600));
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @Test
    void aDeadlineMustBePositive() {
        assertThrows(IllegalArgumentException.class, () -> RankSettings.of(2, 1, 0, "", 0, 600));
        assertThrows(IllegalArgumentException.class, () -> RankSettings.of(2, 1, 0, "", 300, -1));
    }

    @Test
    void aWorkerIsHandedWhatRankZeroResolvedAndReadsItBackTheSame() throws Exception {
        RankSettings r = RankSettings.of(4, 2, 1, "10.0.0.1:29500", 120, 900);
        ModelSpec m = new ModelSpec(java.nio.file.Path.of("/models/q"), "dummy", 7, "cuda:2", "bfloat16", true, true, false, false);
        Map<String, String> handed = Worker.handOn(r, m, 3);
        Worker.WorkerSettings back = Worker.WorkerSettings.read(handed::get);
        assertEquals(r, back.ranks());
        assertEquals(m, back.model());
        assertEquals(3, back.torchThreads());
    }

    @ParameterizedTest
    @ValueSource(strings = {"-Xmx2g", "-Djava.library.path=/opt/jni", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-DRUST_FLAVOR=cpu",
            "-Djdk.lang.processReaperUseDefaultStackSize=true", "--enable-native-access=ALL-UNNAMED"})
    void theJvmOptionsAWorkerNeedsAreHandedOn(String arg) {
        assertTrue(WorkerProcesses.Launch.handedOn(arg));
    }

    @ParameterizedTest
    @ValueSource(strings = {"-javaagent:/wlp/bin/tools/ws-javaagent.jar", "-Djava.util.logging.manager=com.ibm.ws.kernel.boot.logging.WsLogManager",
            "-Dcom.ibm.ws.logging.console.log.level=OFF", "--add-opens=java.base/java.lang=ALL-UNNAMED"})
    void theApplicationServersOwnAreNot(String arg) {
        assertFalse(WorkerProcesses.Launch.handedOn(arg));
    }

    @Test
    void eachRankOfANodeTakesItsOwnCard() {
        ModelSpec m = new ModelSpec(java.nio.file.Path.of("/m"), "auto", 0, "cuda:2", "auto", false, false, false, false);
        assertEquals("cuda:2", m.device(0).str().getString());
        assertEquals("cuda:5", m.device(3).str().getString());
        assertEquals("cpu", new ModelSpec(java.nio.file.Path.of("/m"), "auto", 0, "cpu", "auto", false, false, false, false).device(3).str().getString());
    }
}
