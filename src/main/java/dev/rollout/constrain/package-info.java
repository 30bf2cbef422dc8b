/**
 * Constrained decoding: regexes, JSON schemas, EBNF grammars (their recursion bounded) and structural tags (free text among them) compiled
 * to minimal DFAs over UTF-8 bytes, and, per tokenizer vocabulary, the set of tokens each automaton state allows (ADR 0029). Pure Java:
 * no Jakarta, no tensors. The sampler turns a {@link dev.rollout.constrain.TokenMask} into a device mask.
 */
package dev.rollout.constrain;
