using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

public class ModelEmaTests
{
    [Fact]
    public void AveragesParametersAndBatchNormStatisticsWithRampedDecay()
    {
        using var scope = NewDisposeScope();
        var model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1));
        var copy = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1));
        copy.load_state_dict(model.state_dict());
        var ema = new ModelEma(copy, decay: 0.9999, tau: 2000);
        float start = copy.state_dict()["0.weight"][0, 0].item<float>();

        using (no_grad())
        {
            model.state_dict()["0.weight"].fill_(1.0f);
            model.state_dict()["1.running_mean"].fill_(2.0f);
        }
        ema.Update(model);

        double d = 0.9999 * (1 - Math.Exp(-1 / 2000.0)); // ≈ 4.9983e-4 at the first update
        var state = copy.state_dict();
        Assert.Equal(d * start + (1 - d) * 1.0, state["0.weight"][0, 0].item<float>(), 5);
        Assert.Equal(d * 0.0 + (1 - d) * 2.0, state["1.running_mean"][0].item<float>(), 5);
        Assert.Equal(1, ema.Updates);
        Assert.Equal(0.9999 * (1 - Math.Exp(-2 / 2000.0)), ema.NextDecay, 12);
        Assert.DoesNotContain(copy.parameters(), p => p.requires_grad);
    }
}
