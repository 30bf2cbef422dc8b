package dev.rollout.weights;

/** How an update session ended. */
public record SessionOutcome(String updateId, Result result, String message, long atMillis) {

    public enum Result {
        /** Ended, its update handed to the engine and not yet answered. */
        COMMITTING("being applied"), COMMITTED("committed"), ROLLED_BACK("rolled back"), EMPTY("empty");

        private final String label;

        Result(String label) {
            this.label = label;
        }

        /** As the API has always written it. */
        public String label() {
            return label;
        }
    }
}
