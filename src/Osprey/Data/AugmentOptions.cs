namespace Osprey.Data;

/// <summary>Training augmentation, with Ultralytics' names and defaults.</summary>
/// <param name="Mosaic">Probability of a 4-image mosaic.</param>
/// <param name="Degrees">Rotation range (±degrees).</param>
/// <param name="Translate">Translation range (± fraction of the image side).</param>
/// <param name="Scale">Scale gain range (1 ± scale).</param>
/// <param name="Shear">Shear range (±degrees).</param>
/// <param name="Perspective">Perspective range (±).</param>
/// <param name="HsvH">Hue gain.</param>
/// <param name="HsvS">Saturation gain.</param>
/// <param name="HsvV">Value gain.</param>
/// <param name="FlipLR">Probability of a left-right flip.</param>
/// <param name="FlipUD">Probability of an up-down flip.</param>
/// <param name="Mixup">Probability of mixing with a second (augmented) sample.</param>
/// <param name="CloseMosaic">Mosaic (and mixup) are off for the last N epochs.</param>
public sealed record AugmentOptions(
    double Mosaic = 1.0,
    double Degrees = 0.0,
    double Translate = 0.1,
    double Scale = 0.5,
    double Shear = 0.0,
    double Perspective = 0.0,
    double HsvH = 0.015,
    double HsvS = 0.7,
    double HsvV = 0.4,
    double FlipLR = 0.5,
    double FlipUD = 0.0,
    double Mixup = 0.0,
    int CloseMosaic = 10)
{
    /// <summary>Ultralytics' defaults.</summary>
    public static AugmentOptions Default { get; } = new();

    /// <summary>No augmentation at all (plain letterbox), still the training code path.</summary>
    public static AugmentOptions None { get; } = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>True when mosaic/mixup apply in <paramref name="epoch"/> (0-based) of <paramref name="epochs"/>.</summary>
    public bool MosaicActive(int epoch, int epochs) => Mosaic > 0 && !(CloseMosaic > 0 && epochs > 0 && epoch >= epochs - CloseMosaic);
}
