namespace Osprey.Data;

/// <summary>What loading one split of a dataset found.</summary>
/// <param name="Dataset">Dataset name.</param>
/// <param name="Split">Split.</param>
/// <param name="Images">Usable images (backgrounds included).</param>
/// <param name="Backgrounds">Usable images without boxes (no label file, or an empty one).</param>
/// <param name="Boxes">Boxes kept.</param>
/// <param name="SkippedImages">Images left out that decode but are unusable (side below 10 px).</param>
/// <param name="CorruptImages">Images left out because they are unreadable, undecodable or truncated.</param>
/// <param name="DroppedRows">Label rows skipped as invalid.</param>
/// <param name="DuplicateRows">Duplicate label rows removed (in memory only).</param>
/// <param name="OrphanLabels">Label files without an image.</param>
/// <param name="VerifiedFiles">Images checked now (the rest came from our cache).</param>
/// <param name="CachedFiles">Images whose check came from our cache.</param>
/// <param name="CachePath">Our verification cache file, or null when it could not be written.</param>
/// <param name="Messages">One line per problem, naming the file.</param>
public sealed record DatasetSummary(
    string Dataset,
    DatasetSplit Split,
    int Images,
    int Backgrounds,
    int Boxes,
    int SkippedImages,
    int CorruptImages,
    int DroppedRows,
    int DuplicateRows,
    int OrphanLabels,
    int VerifiedFiles,
    int CachedFiles,
    string? CachePath,
    IReadOnlyList<string> Messages);
