namespace Osprey.Data;

/// <summary>Where a batch image came from and how it was scaled, for mapping predictions back to the original image:
/// <c>x_original = (x - PadX) / RatioX</c>, <c>y_original = (y - PadY) / RatioY</c> (pixels of the batch image).</summary>
/// <param name="Path">Image file (for a mosaic: its first tile).</param>
/// <param name="DatasetIndex">Index in the dataset.</param>
/// <param name="OriginalHeight">Height of the file's image.</param>
/// <param name="OriginalWidth">Width of the file's image.</param>
/// <param name="RatioY">Vertical scale original → batch image.</param>
/// <param name="RatioX">Horizontal scale original → batch image.</param>
/// <param name="PadY">Top padding in batch pixels.</param>
/// <param name="PadX">Left padding in batch pixels.</param>
public sealed record ImageInfo(string Path, int DatasetIndex, int OriginalHeight, int OriginalWidth, float RatioY, float RatioX, float PadY, float PadX)
{
    /// <summary>Maps an xyxy box in batch-image pixels to original-image pixels (clipped to the image).</summary>
    public (float X1, float Y1, float X2, float Y2) ToOriginal(float x1, float y1, float x2, float y2) => (
        Math.Clamp((x1 - PadX) / RatioX, 0, OriginalWidth),
        Math.Clamp((y1 - PadY) / RatioY, 0, OriginalHeight),
        Math.Clamp((x2 - PadX) / RatioX, 0, OriginalWidth),
        Math.Clamp((y2 - PadY) / RatioY, 0, OriginalHeight));
}
