namespace Osprey.Inference;

/// <summary>An axis-aligned box, corners in original-image pixels.</summary>
public readonly record struct Box(float X1, float Y1, float X2, float Y2)
{
    /// <summary>Width in pixels.</summary>
    public float Width => X2 - X1;

    /// <summary>Height in pixels.</summary>
    public float Height => Y2 - Y1;

    /// <summary>Centre x.</summary>
    public float CenterX => (X1 + X2) / 2;

    /// <summary>Centre y.</summary>
    public float CenterY => (Y1 + Y2) / 2;
}

/// <summary>One detected object: box (xyxy, original pixels), confidence, class index and name.</summary>
public sealed record Detection(Box Box, float Confidence, int ClassId, string ClassName);
