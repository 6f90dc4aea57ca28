namespace Osprey.Data;

/// <summary>Which part of a dataset.</summary>
public enum DatasetSplit
{
    /// <summary>Training images.</summary>
    Train,
    /// <summary>Validation images.</summary>
    Val,
    /// <summary>Test images.</summary>
    Test,
}

/// <summary>
/// A resolved Ultralytics dataset description: absolute image sources per split (folders, image files or txt lists)
/// and the class names (<see cref="ClassCount"/> = number of names).
/// </summary>
/// <param name="Name">Short name (YAML file name without extension, or <c>shapes</c>).</param>
/// <param name="YamlPath">The YAML file it came from.</param>
/// <param name="Root">The resolved <c>path</c>.</param>
/// <param name="Train">Train sources (absolute).</param>
/// <param name="Val">Val sources (absolute).</param>
/// <param name="Test">Test sources (absolute; may be empty).</param>
/// <param name="Names">Class names, index = class id.</param>
public sealed record DatasetConfig(
    string Name,
    string YamlPath,
    string Root,
    IReadOnlyList<string> Train,
    IReadOnlyList<string> Val,
    IReadOnlyList<string> Test,
    IReadOnlyList<string> Names)
{
    /// <summary>Number of classes.</summary>
    public int ClassCount => Names.Count;

    /// <summary>The sources of a split.</summary>
    public IReadOnlyList<string> Sources(DatasetSplit split) => split switch
    {
        DatasetSplit.Train => Train,
        DatasetSplit.Val => Val,
        _ => Test,
    };
}
