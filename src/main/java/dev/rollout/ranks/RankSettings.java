package dev.rollout.ranks;

import java.time.Duration;

/**
 * How the model is spread over processes: SGLang's {@code --tp-size}, {@code --nnodes},
 * {@code --node-rank} and {@code --dist-init-addr}, and the two deadlines of the rank protocol.
 * Each node runs {@link #ranksPerNode()} ranks, numbered from {@link #firstRank()}; rank 0, on
 * node 0, is the server (HTTP, scheduler, tokenizer, block manager), every other rank a
 * {@link Worker} process.
 *
 * @param initHost    where rank 0 hosts the group's store; on one node, 127.0.0.1
 * @param initPort    its port; 0 on one node lets rank 0 take a free one and tell its workers
 * @param stepTimeout a step's collectives, and a worker's wait for its next message: longer means
 *                    a rank is lost (rank 0 sends an idle message well within it)
 * @param joinTimeout meeting, and loading the shards: the slowest rank's start
 */
public record RankSettings(int tpSize, int nnodes, int nodeRank, String initHost, int initPort, Duration stepTimeout,
                           Duration joinTimeout) {
    public static final RankSettings SINGLE = new RankSettings(1, 1, 0, "127.0.0.1", 0, Duration.ofMinutes(5), Duration.ofMinutes(10));

    public RankSettings {
        if (tpSize < 1) throw new IllegalArgumentException("rollout.tp-size must be at least 1, not " + tpSize);
        if (nnodes < 1) throw new IllegalArgumentException("rollout.nnodes must be at least 1, not " + nnodes);
        if (tpSize % nnodes != 0)
            throw new IllegalArgumentException("rollout.tp-size " + tpSize + " is not divisible by rollout.nnodes " + nnodes
                    + ": every node runs the same number of ranks");
        if (nodeRank < 0 || nodeRank >= nnodes)
            throw new IllegalArgumentException("rollout.node-rank " + nodeRank + " is not a node of rollout.nnodes " + nnodes);
        if (nnodes > 1 && initPort == 0)
            throw new IllegalArgumentException("rollout.dist-init-addr (host:port of node 0) is required with rollout.nnodes "
                    + nnodes + ": the other nodes' ranks meet rank 0 there");
        if (initPort < 0 || initPort > 65535) throw new IllegalArgumentException("rollout.dist-init-addr's port " + initPort + " is no TCP port");
        if (stepTimeout.isNegative() || stepTimeout.isZero() || joinTimeout.isNegative() || joinTimeout.isZero())
            throw new IllegalArgumentException("the rank deadlines must be positive: " + stepTimeout + ", " + joinTimeout);
    }

    /**
     * Reads the settings' own spelling.
     *
     * @param distInitAddr "host:port", or empty for 127.0.0.1 and a free port (one node only)
     */
    public static RankSettings of(int tpSize, int nnodes, int nodeRank, String distInitAddr, double stepTimeoutSeconds,
                                  double joinTimeoutSeconds) {
        String host = "127.0.0.1";
        int port = 0;
        String addr = distInitAddr == null ? "" : distInitAddr.strip();
        if (!addr.isEmpty()) {
            int colon = addr.lastIndexOf(':');
            if (colon <= 0 || colon == addr.length() - 1)
                throw new IllegalArgumentException("rollout.dist-init-addr must be host:port, not '" + addr + "'");
            host = addr.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);  // [::1]:port
            try {
                port = Integer.parseInt(addr.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("rollout.dist-init-addr must be host:port, not '" + addr + "'");
            }
            if (port < 1) throw new IllegalArgumentException("rollout.dist-init-addr's port " + port + " is no TCP port");
        }
        return new RankSettings(tpSize, nnodes, nodeRank, host, port, seconds(stepTimeoutSeconds), seconds(joinTimeoutSeconds));
    }

    private static Duration seconds(double s) {
        return Duration.ofMillis((long) (s * 1000));
    }

    public int ranksPerNode() {
        return tpSize / nnodes;
    }

    /** This node's first rank. */
    public int firstRank() {
        return nodeRank * ranksPerNode();
    }

    /** The same settings with rank 0's store at {@code port}: rank 0 chose it and hands it to the workers it starts. */
    public RankSettings withInitPort(int port) {
        return new RankSettings(tpSize, nnodes, nodeRank, initHost, port, stepTimeout, joinTimeout);
    }

    /** host:port, as rollout.dist-init-addr spells it. */
    public String initAddr() {
        return (initHost.contains(":") ? "[" + initHost + "]" : initHost) + ":" + initPort;
    }
}
