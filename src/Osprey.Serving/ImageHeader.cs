using System.Buffers.Binary;

namespace Osprey.Serving;

/// <summary>
/// Reads an encoded image's width and height from its header without decoding it, so a small file that would decode
/// into a huge image (a 30000×30000 one-colour PNG is a few hundred KB) is refused before any pixel memory is taken.
/// Knows PNG (IHDR), JPEG (the SOFn segment) and BMP; other formats are checked after decoding.
/// </summary>
public static class ImageHeader
{
    /// <summary>Width and height from a PNG, JPEG or BMP header; null for other formats or a header cut short.</summary>
    public static (int Width, int Height)? TryReadSize(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 24 && data[..8].SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }) &&
            data.Slice(12, 4).SequenceEqual("IHDR"u8))
            return Size(BinaryPrimitives.ReadUInt32BigEndian(data[16..]), BinaryPrimitives.ReadUInt32BigEndian(data[20..]));
        if (data.Length >= 26 && data[0] == (byte)'B' && data[1] == (byte)'M')
            return Size((uint)BinaryPrimitives.ReadInt32LittleEndian(data[18..]), (uint)Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(data[22..])));
        if (data.Length >= 4 && data[0] == 0xFF && data[1] == 0xD8) return JpegSize(data);
        return null;
    }

    static (int, int)? Size(uint width, uint height) => ((int)Math.Min(width, int.MaxValue), (int)Math.Min(height, int.MaxValue));

    // Walks the JPEG segments from SOI to the first start-of-frame marker (SOF0…SOF15 less DHT C4, JPG C8, DAC CC).
    static (int, int)? JpegSize(ReadOnlySpan<byte> data)
    {
        int i = 2;
        while (i + 4 <= data.Length)
        {
            if (data[i] != 0xFF) return null;
            byte marker = data[i + 1];
            if (marker == 0xFF) { i++; continue; }                                   // fill byte
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) { i += 2; continue; }      // no length
            if (marker is 0xD9 or 0xDA) return null;                                // end of image, start of scan: no frame header before
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[(i + 2)..]);
            if (marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC))
                return i + 9 <= data.Length
                    ? Size(BinaryPrimitives.ReadUInt16BigEndian(data[(i + 7)..]), BinaryPrimitives.ReadUInt16BigEndian(data[(i + 5)..]))
                    : null;
            if (length < 2) return null;
            i += 2 + length;
        }
        return null;
    }
}
