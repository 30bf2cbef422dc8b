package dev.rollout.engine;

/** Memory the server can give back between RL phases (SGLang's release_memory_occupation tags). */
public enum MemoryTag { WEIGHTS, KV_CACHE, CUDA_GRAPH }
