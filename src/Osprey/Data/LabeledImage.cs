namespace Osprey.Data;

/// <summary>One usable image of a dataset and its boxes.</summary>
/// <param name="ImagePath">Absolute image path.</param>
/// <param name="Width">Image width in pixels (after EXIF orientation).</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="Classes">Class id per box.</param>
/// <param name="Boxes">Normalised centre-xywh, 4 floats per box.</param>
public sealed record LabeledImage(string ImagePath, int Width, int Height, int[] Classes, float[] Boxes)
{
    /// <summary>Number of boxes.</summary>
    public int BoxCount => Classes.Length;

    /// <summary>True when the image has no boxes.</summary>
    public bool IsBackground => Classes.Length == 0;
}
