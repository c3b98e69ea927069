"""English function words: they carry no attribute and no value (supersession, spec §4.6),
and no evidence of what a retrieved memory is about (query expansion)."""

FUNCTION_WORDS = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "is", "are",
    "was", "were", "be", "been", "being", "am", "do", "does", "did", "has", "have", "had",
    "having", "of", "in", "on", "at", "to", "for", "from", "by", "with", "about", "as",
    "into", "onto", "than", "then", "so", "and", "or", "but", "nor", "not", "no", "yes", "i",
    "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours", "he", "him", "his",
    "she", "her", "hers", "they", "them", "their", "theirs", "there", "here", "which", "who",
    "whom", "whose", "what", "when", "where", "why", "how", "all", "any", "some", "each",
    "every", "both", "either", "neither", "also", "just", "very", "really", "too", "quite",
    "still", "again", "ever", "already", "yet", "will", "shall", "would", "should", "can",
    "could", "may", "might", "must", "up", "down", "out", "off", "over", "under", "own",
    "same", "other", "such", "only", "more", "most", "less", "least", "much", "many", "few",
    "one's", "let's", "i'm", "i've", "i'd", "i'll", "we're", "we've", "you're", "he's",
    "she's", "they're", "that's", "there's", "s", "t"
})
