package dev.rollout.engine;

public enum SequenceStatus { WAITING, RUNNING, FINISHED }
