package dev.rollout.constrain;

/**
 * A compiled constraint: what the client sent, and the minimal byte DFA of the texts it allows.
 * Independent of any tokenizer; {@link #index} pairs it with one.
 *
 * @param kind "regex", "json_schema", "ebnf" or "structural_tag" (SGLang's field names)
 * @param source the text the client sent
 */
public record Constraint(String kind, String source, ByteDfa dfa) {
    public static Constraint regex(String regex, ConstraintLimits limits) {
        return new Constraint("regex", regex, AutomatonBuilder.compile(RegexParser.parse(regex, limits), limits));
    }

    public static Constraint jsonSchema(String schema, ConstraintLimits limits) {
        return new Constraint("json_schema", schema, AutomatonBuilder.compile(JsonSchemaCompiler.compile(schema, limits), limits));
    }

    /** An EBNF/GBNF grammar ({@link EbnfParser}), its recursion bounded as {@link EbnfCompiler} says. */
    public static Constraint ebnf(String grammar, ConstraintLimits limits) {
        return new Constraint("ebnf", grammar, EbnfCompiler.compile(grammar, limits));
    }

    /** A {@link StructuralTag}: literal text, schemas, regexes and free text in sequence, the shape of a model's tool calls. */
    public static Constraint structuralTag(String tag, ConstraintLimits limits) {
        return new Constraint("structural_tag", tag, StructuralTag.dfa(tag, limits));
    }

    public TokenIndex index(Vocabulary vocab) {
        return new TokenIndex(vocab, dfa);
    }

    @Override
    public String toString() {
        return "Constraint[" + kind + ", " + dfa.states() + " states]";
    }
}
